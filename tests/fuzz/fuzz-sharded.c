/*
 * fuzz-sharded.c — bytes as a Hugging Face index (io-sharded.c) over two
 * real shards in a scratch directory: the JSON, the shard names (a path
 * out of the directory, a missing shard), tensors not where the map puts
 * them or not in it at all.  A model that opens must hold exactly the
 * shards' tensors, each pointing into its shard's bytes, and its layers
 * (a stack of experts split into views among them) must load.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzlib.h"
#include "rankscope/layer.h"
#include "rankscope/model.h"
#include "rankscope/util.h"

static char *index_path;

/* A safetensors image of float32 tensors, every value 0.5. */
static void
write_shard(const char *name, const char *header)
{
	char *path = rs_xasprintf("%s/%s", fuzz_scratch_dir(), name);
	size_t hlen = strlen(header), pad = (8 - hlen % 8) % 8, total = 0;
	const char *p;
	unsigned char *img;
	size_t i, len;

	/* the data length is the largest end offset in the header */
	for (p = header; (p = strstr(p, "\"data_offsets\":[")) != NULL; p++) {
		size_t a, b;
		if (sscanf(p, "\"data_offsets\":[%zu,%zu]", &a, &b) == 2 && b > total)
			total = b;
	}
	len = 8 + hlen + pad + total;
	img = rs_xcalloc(len, 1);
	for (i = 0; i < 8; i++)
		img[i] = (unsigned char)((hlen + pad) >> (8 * i));
	memcpy(img + 8, header, hlen);
	memset(img + 8 + hlen, ' ', pad);
	for (i = 0; i + 4 <= total; i += 4)
		memcpy(img + 8 + hlen + pad + i, "\0\0\0\x3f", 4);
	fuzz_write_file(path, img, len);
	free(img);
	free(path);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	write_shard("model-00001-of-00002.safetensors",
	            "{\"layers.0.w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
	            "\"layers.1.w\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[16,40]}}");
	write_shard("model-00002-of-00002.safetensors",
	            "{\"head.w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
	            "\"moe.experts.w\":{\"dtype\":\"F32\",\"shape\":[2,2,2],\"data_offsets\":[24,56]}}");
	index_path = rs_xasprintf("%s/model.safetensors.index.json", fuzz_scratch_dir());
	return 0;
}

static void
check_model(const rs_model *m)
{
	size_t i, k, n = 0;

	FUZZ_ASSERT(m->nparts >= 1 && m->nparts <= 2, "shards");
	for (k = 0; k < m->nparts; k++)
		n += m->parts[k]->ntensors;
	/* the stack of 2 experts is 2 tensors here, 1 in its shard */
	FUZZ_ASSERT(m->ntensors == n + (rs_model_find(m, "moe.experts.w.0") != NULL), "count");
	for (i = 0; i < m->ntensors; i++) {
		const rs_tensor *t = &m->tensors[i];
		bool inside = false;

		for (k = 0; k < m->nparts && !inside; k++) {
			const rs_model *p = m->parts[k];
			inside = t->data >= p->map && t->data + t->nbytes <= p->map + p->map_len;
		}
		FUZZ_ASSERT(inside, t->name);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rs_error err;
	rs_model *m;

	fuzz_write_file(index_path, data, size);
	m = rs_model_open(index_path, &err);
	if (m == NULL) {
		fuzz_check_refusal(err.code, &err);
		FUZZ_ASSERT(!fuzz_has_control_byte(err.msg, false), err.msg);
		return 0;
	}
	if (m->format != NULL && strcmp(m->format, "sharded") == 0) {
		check_model(m);
		fuzz_load_layers(m, index_path);
	}
	rs_model_close(m);
	return 0;
}
