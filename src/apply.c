/*
 * apply.c — writes the compressed model a plan describes; see
 * rankscope/apply.h for the naming and layout.
 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rankscope/apply.h"
#include "rankscope/file.h"
#include "rankscope/svd.h"
#include "rankscope/util.h"

/* One output tensor: copied from the input, or a factor of a layer. */
typedef struct out_tensor {
	char *name;
	const rs_tensor *source;     /* copied through when non-NULL */
	size_t layer;                /* else: factor of this layer */
	bool is_b;                   /* B (rows x r) or A (r x cols) */
	size_t rows, cols;           /* factor shape */
	size_t nbytes;
} out_tensor;

/* The layer a tensor is, if the plan factorises it; SIZE_MAX otherwise. */
static size_t
factorised_layer(const rs_tensor *t, const rs_layer *layers, size_t nlayers,
                 const rs_spectrum *const *spectra, const rs_plan *plan, size_t *rank)
{
	size_t i;

	for (i = 0; i < nlayers; i++) {
		rs_plan_figures f;
		if (layers[i].tensor != t)
			continue;
		rs_plan_figures_for(&layers[i], spectra[i], &plan->entries[i], &f);
		if (f.method != RS_METHOD_LOWRANK)
			return SIZE_MAX;
		*rank = f.rank;
		return i;
	}
	return SIZE_MAX;
}

static char *
build_header(const rs_model *model, const out_tensor *outs, size_t nouts,
             const char *plan_json, size_t *len)
{
	json_t *root = json_object(), *meta = json_object();
	size_t i, offset = 0, hlen, padded;
	char *text, *out;

	for (i = 0; i < model->nmetadata; i++)
		json_object_set_new(meta, model->metadata[i].key,
		                    json_string(model->metadata[i].value));
	if (plan_json != NULL)
		json_object_set_new(meta, "rankscope_plan", json_string(plan_json));
	json_object_set_new(meta, "rankscope_version", json_string(PACKAGE_VERSION));
	json_object_set_new(root, "__metadata__", meta);
	for (i = 0; i < nouts; i++) {
		json_t *o = json_object(), *shape = json_array(), *offs = json_array();
		size_t d;
		if (outs[i].source) {
			const rs_tensor *t = outs[i].source;
			json_object_set_new(o, "dtype", json_string(rs_dtype_get(t->dtype)->name));
			for (d = 0; d < t->ndim; d++)
				json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
		} else {
			json_object_set_new(o, "dtype", json_string("F32"));
			json_array_append_new(shape, json_integer((json_int_t)outs[i].rows));
			json_array_append_new(shape, json_integer((json_int_t)outs[i].cols));
		}
		json_object_set_new(o, "shape", shape);
		json_array_append_new(offs, json_integer((json_int_t)offset));
		json_array_append_new(offs, json_integer((json_int_t)(offset + outs[i].nbytes)));
		json_object_set_new(o, "data_offsets", offs);
		json_object_set_new(root, outs[i].name, o);
		offset += outs[i].nbytes;
	}
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (text == NULL)
		abort();
	/* pad with spaces so the data starts 8-byte aligned */
	hlen = strlen(text);
	padded = (hlen + 7) / 8 * 8;
	out = rs_xmalloc(8 + padded);
	for (i = 0; i < 8; i++)
		out[i] = (char)(((uint64_t)padded >> (8 * i)) & 0xff);
	memcpy(out + 8, text, hlen);
	memset(out + 8 + hlen, ' ', padded - hlen);
	free(text);
	*len = 8 + padded;
	return out;
}

/*
 * Factorises one layer: fills a (rows x r, B) and at (r x cols, A) as
 * float32 row-major, and measures the error of B A against W.
 */
static rs_status
factorise(const rs_model *model, const rs_layer *l, size_t r, float *b, float *a,
          rs_apply_report *rep, rs_error *err)
{
	size_t m = l->rows, n = l->cols, k = m < n ? m : n, i, j, t;
	double *w = malloc(m * n * sizeof *w), *u = malloc(m * k * sizeof *u);
	double *vt = malloc(k * n * sizeof *vt), *s = malloc(k * sizeof *s);
	double *diff = malloc(m * n * sizeof *diff), *ds = malloc(k * sizeof *ds);
	double fro_w = 0, fro_d = 0, dummy = 0;
	rs_status st = RS_OK;
	lapack_int info;

	if (!w || !u || !vt || !s || !diff || !ds) {
		st = rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory for its "
		                  "factorisation", model->path, l->name);
		goto out;
	}
	if ((st = rs_layer_load(l, w, m, model->path, err)) != RS_OK)
		goto out;
	memcpy(diff, w, m * n * sizeof *w);
	info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'S', (lapack_int)m, (lapack_int)n, diff,
	                      (lapack_int)m, s, u, (lapack_int)m, vt, (lapack_int)k);
	if (info != 0) {
		st = rs_error_set(err, RS_ENUMERIC, "%s: layer '%s': dgesdd did not converge "
		                  "(info %d)", model->path, l->name, (int)info);
		goto out;
	}
	/* B = U_r sqrt(S_r) (rows x r), A = sqrt(S_r) V_r^T (r x cols), row-major */
	for (i = 0; i < m; i++)
		for (t = 0; t < r; t++)
			b[i * r + t] = (float)(u[i + t * m] * sqrt(s[t]));
	for (t = 0; t < r; t++)
		for (j = 0; j < n; j++)
			a[t * n + j] = (float)(sqrt(s[t]) * vt[t + j * k]);
	/* measure from the float32 factors actually written */
	for (j = 0; j < n; j++)
		for (i = 0; i < m; i++) {
			double x = 0;
			for (t = 0; t < r; t++)
				x += (double)b[i * r + t] * (double)a[t * n + j];
			diff[i + j * m] = w[i + j * m] - x;
			fro_w += w[i + j * m] * w[i + j * m];
			fro_d += diff[i + j * m] * diff[i + j * m];
		}
	rep->measured_fro = fro_w > 0 ? sqrt(fro_d / fro_w) : 0;
	info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', (lapack_int)m, (lapack_int)n, diff,
	                      (lapack_int)m, ds, &dummy, 1, &dummy, 1);
	if (info != 0) {
		st = rs_error_set(err, RS_ENUMERIC, "%s: layer '%s': dgesdd did not converge "
		                  "(info %d)", model->path, l->name, (int)info);
		goto out;
	}
	rep->measured_spec = s[0] > 0 ? ds[0] / s[0] : 0;
out:
	free(w); free(u); free(vt); free(s); free(diff); free(ds);
	return st;
}

static rs_status
write_all(FILE *f, const void *data, size_t len, const char *path, rs_error *err)
{
	if (len > 0 && fwrite(data, 1, len, f) != len)
		return rs_error_set(err, RS_EIO, "%s: write failed: %s", path, strerror(errno));
	return RS_OK;
}

rs_status
rs_apply(const rs_model *model, const rs_layer *layers, size_t nlayers,
         const rs_spectrum *const *spectra, const rs_plan *plan,
         const char *plan_json, const char *out_path,
         rs_apply_progress progress, void *userdata, rs_error *err)
{
	out_tensor *outs = rs_xcalloc(2 * model->ntensors + 1, sizeof *outs);
	size_t nouts = 0, i, hlen;
	char *header = NULL, *tmp = NULL;
	FILE *f = NULL;
	rs_status st = RS_OK;
	int fd;

	for (i = 0; i < model->ntensors; i++) {
		const rs_tensor *t = &model->tensors[i];
		size_t rank = 0, li = factorised_layer(t, layers, nlayers, spectra, plan, &rank);

		if (li == SIZE_MAX) {
			outs[nouts++] = (out_tensor){rs_xstrdup(t->name), t, 0, false, 0, 0, t->nbytes};
			continue;
		}
		outs[nouts++] = (out_tensor){rs_xasprintf("%s.lowrank.A", t->name), NULL, li,
		                             false, rank, layers[li].cols,
		                             rank * layers[li].cols * sizeof(float)};
		outs[nouts++] = (out_tensor){rs_xasprintf("%s.lowrank.B", t->name), NULL, li,
		                             true, layers[li].rows, rank,
		                             layers[li].rows * rank * sizeof(float)};
	}
	header = build_header(model, outs, nouts, plan_json, &hlen);

	tmp = rs_xasprintf("%s.tmp-XXXXXX", out_path);
	fd = mkstemp(tmp);
	if (fd < 0 || (f = fdopen(fd, "wb")) == NULL) {
		st = rs_error_set(err, RS_EIO, "%s: cannot create a temporary file beside it: %s",
		                  out_path, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(tmp);
		}
		free(tmp);
		tmp = NULL;
		goto out;
	}
	/* mkstemp creates 0600; the output gets the usual umask mode */
	{
		mode_t mask = umask(0);
		umask(mask);
		fchmod(fd, 0666 & ~mask);
	}
	if ((st = write_all(f, header, hlen, out_path, err)) != RS_OK)
		goto out;
	for (i = 0; i < nouts && st == RS_OK; i++) {
		const out_tensor *o = &outs[i];
		const rs_layer *l;
		rs_apply_report rep;
		rs_plan_figures fig;
		float *a, *b;

		if (o->source) {
			st = write_all(f, o->source->data, o->nbytes, out_path, err);
			continue;
		}
		if (o->is_b)
			continue;   /* written together with its A, just below */
		l = &layers[o->layer];
		b = malloc(outs[i + 1].nbytes ? outs[i + 1].nbytes : 1);
		a = malloc(o->nbytes ? o->nbytes : 1);
		memset(&rep, 0, sizeof rep);
		if (a == NULL || b == NULL) {
			st = rs_error_set(err, RS_ENOMEM, "%s: layer '%s': out of memory", model->path,
			                  l->name);
		} else {
			st = factorise(model, l, o->rows, b, a, &rep, err);
			if (st == RS_OK)
				st = write_all(f, a, o->nbytes, out_path, err);
			if (st == RS_OK)
				st = write_all(f, b, outs[i + 1].nbytes, out_path, err);
		}
		free(a);
		free(b);
		if (st == RS_OK && progress) {
			rs_plan_figures_for(l, spectra[o->layer], &plan->entries[o->layer], &fig);
			rep.layer = l;
			rep.rank = o->rows;
			rep.predicted_fro = fig.err_fro;
			rep.predicted_spec = fig.err_spec;
			progress(userdata, &rep);
		}
	}
	if (st == RS_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
		st = rs_error_set(err, RS_EIO, "%s: write failed: %s", out_path, strerror(errno));
	if (fclose(f) != 0 && st == RS_OK)
		st = rs_error_set(err, RS_EIO, "%s: write failed: %s", out_path, strerror(errno));
	f = NULL;
	if (st == RS_OK && rename(tmp, out_path) != 0)
		st = rs_error_set(err, RS_EIO, "%s: cannot replace: %s", out_path, strerror(errno));
	if (st == RS_OK)
		rs_file_sync_directory(out_path);
out:
	if (f != NULL)
		fclose(f);
	if (tmp != NULL) {
		if (st != RS_OK)
			unlink(tmp);
		free(tmp);
	}
	for (i = 0; i < nouts; i++)
		free(outs[i].name);
	free(outs);
	free(header);
	return st;
}
