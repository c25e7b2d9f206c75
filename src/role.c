/*
 * role.c — what each tensor is, where the file does not say; see
 * rankscope/role.h.
 *
 * The rules are deliberately few and stated in HACKING.md, so that a user
 * can predict them and override them:
 *   - 2-D: an embedding when its name says so ("embed", "embd", "wte",
 *     "wpe", but not GPT-NeoX's output head "embed_out"), else linear;
 *   - 3-D: a Conv1d kernel (f, c, k) when the kernel width k is small
 *     (at most CONV1D_MAX_WIDTH), f > 1 and the name does not say experts
 *     ("expert", GGUF's "exps"); anything else (stacked experts, position
 *     tables of shape (1, n, d)) is not a layer;
 *   - stacked experts, 3-D (E, out, in) with a name saying so ("expert",
 *     GGUF's "exps"), become E 2-D tensors NAME.0 .. NAME.E-1, views of
 *     the stack (nothing is copied), each a linear layer of its own;
 *   - 3-D and 4-D kernels with one input channel per group (c == 1) are
 *     depthwise when their name says so or when the convolution before
 *     them in network order has as many output channels: a first layer on
 *     a one-channel image is (f, 1, kh, kw) too, and stays ordinary.
 */
#include "config.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/dtype.h"
#include "rankscope/role.h"
#include "rankscope/util.h"

#define CONV1D_MAX_WIDTH 64

/* Case-insensitive substring search. */
static bool
name_has(const char *name, const char *word)
{
	size_t n = strlen(word), i, k;

	for (i = 0; name[i]; i++) {
		for (k = 0; k < n && name[i + k] &&
		            tolower((unsigned char)name[i + k]) == word[k]; k++)
			;
		if (k == n)
			return true;
	}
	return false;
}

static bool
looks_like_embedding(const char *name)
{
	if (name_has(name, "embed_out"))
		return false;
	return name_has(name, "embed") || name_has(name, "embd") ||
	       name_has(name, "wte.") || name_has(name, "wpe.");
}

static bool
looks_depthwise(const char *name)
{
	return name_has(name, "depthwise") || name_has(name, "dwconv") ||
	       name_has(name, "dw_conv");
}

static bool
looks_like_experts(const rs_tensor *t)
{
	return t->ndim == 3 && (name_has(t->name, "expert") || name_has(t->name, "exps"));
}

/*
 * Replaces tensor i by n 2-D views of consecutive row blocks of its data,
 * nothing copied: view k has rows[k] rows (each rows when rows is NULL) of
 * cols elements, starts where view k-1 ends, is named NAME.names[k] (NAME.k
 * when names is NULL) and keeps the tensor's other fields.  A
 * block-quantised tensor splits at whole rows, which its reader has checked
 * are whole blocks.
 */
static void
replace_by_row_views(rs_model *m, size_t i, size_t n, const size_t *rows, size_t each,
                     size_t cols, char *const *names)
{
	rs_tensor whole = m->tensors[i];
	size_t rowbytes = rs_dtype_nbytes(whole.dtype, cols), k, at = 0;
	const rs_tensor_whole *of = whole.whole;

	/* a view of a view stands for the same whole (its rows are a run of
	 * the whole's, in order); a file's tensor becomes one */
	if (of == NULL) {
		rs_tensor_whole *w = rs_xmalloc(sizeof *w);
		w->name = rs_xstrdup(whole.name);
		w->ndim = whole.ndim;
		w->shape = rs_xmalloc((whole.ndim ? whole.ndim : 1) * sizeof *w->shape);
		memcpy(w->shape, whole.shape, whole.ndim * sizeof *w->shape);
		m->wholes = rs_xreallocarray(m->wholes, m->nwholes + 1, sizeof *m->wholes);
		m->wholes[m->nwholes++] = w;
		of = w;
	}

	m->tensors = rs_xreallocarray(m->tensors, m->ntensors + n - 1, sizeof *m->tensors);
	memmove(&m->tensors[i + n], &m->tensors[i + 1],
	        (m->ntensors - i - 1) * sizeof *m->tensors);
	for (k = 0; k < n; k++) {
		rs_tensor *v = &m->tensors[i + k];
		size_t r = rows != NULL ? rows[k] : each;

		*v = whole;
		v->name = names != NULL ? rs_xasprintf("%s.%s", whole.name, names[k])
		                        : rs_xasprintf("%s.%zu", whole.name, k);
		v->ndim = 2;
		v->shape = rs_xcalloc(2, sizeof *v->shape);
		v->shape[0] = r;
		v->shape[1] = cols;
		v->count = r * cols;
		v->nbytes = r * rowbytes;
		v->offset = whole.offset + at * rowbytes;
		v->data = whole.data + at * rowbytes;
		v->whole = of;
		at += r;
	}
	m->ntensors += n - 1;
	free(whole.name);
	free(whole.shape);
}

/* Replaces tensor i, a stack (E, out, in), by E linear views (out, in)
 * named NAME.e. */
static void
split_experts(rs_model *m, size_t i)
{
	size_t e, count = m->tensors[i].shape[0];

	replace_by_row_views(m, i, count, NULL, m->tensors[i].shape[1], m->tensors[i].shape[2],
	                     NULL);
	for (e = 0; e < count; e++)
		m->tensors[i + e].role = RS_ROLE_LINEAR;
}

void
rs_roles_split_experts(rs_model *m)
{
	size_t i;

	for (i = 0; i < m->ntensors; i++)
		if (looks_like_experts(&m->tensors[i]) &&
		    rs_dtype_get(m->tensors[i].dtype)->is_float && m->tensors[i].shape[0] >= 1 &&
		    m->tensors[i].count > 0 && m->tensors[i].role == RS_ROLE_UNKNOWN) {
			size_t n = m->tensors[i].shape[0];
			split_experts(m, i);
			i += n - 1;
		}
}

void
rs_roles_infer(rs_model *m)
{
	size_t i, prev_out = 0;

	for (i = 0; i < m->ntensors; i++) {
		rs_tensor *t = &m->tensors[i];
		bool set_here = t->role == RS_ROLE_UNKNOWN;

		if (!rs_dtype_get(t->dtype)->is_float)
			continue;
		if (set_here && t->ndim == 2)
			t->role = looks_like_embedding(t->name) ? RS_ROLE_EMBEDDING :
			          RS_ROLE_LINEAR;
		else if (set_here && t->ndim == 3 && t->shape[0] > 1 &&
		         t->shape[2] <= CONV1D_MAX_WIDTH && !name_has(t->name, "expert") &&
		         !name_has(t->name, "exps"))
			t->role = RS_ROLE_CONV;
		else if (set_here && t->ndim == 4)
			t->role = RS_ROLE_CONV;
		if (t->role != RS_ROLE_CONV || (t->ndim != 3 && t->ndim != 4))
			continue;
		if (set_here && t->groups == 0 && t->shape[1] == 1 && t->shape[0] > 1 &&
		    (looks_depthwise(t->name) || prev_out == t->shape[0]))
			t->groups = t->shape[0];
		prev_out = t->shape[0];
	}
}

static const struct {
	const char *name;
	rs_kind_choice kind;
} kind_names[] = {
	{"linear", RS_KIND_LINEAR}, {"embedding", RS_KIND_EMBEDDING},
	{"conv", RS_KIND_CONV}, {"depthwise", RS_KIND_DEPTHWISE},
	{"other", RS_KIND_OTHER},
};
#define NKINDS (sizeof kind_names / sizeof kind_names[0])

rs_status
rs_role_rule_parse(const char *text, bool is_layout, rs_role_rule *out, rs_error *err)
{
	const char *eq = strrchr(text, '='), *value;
	const char *opt = is_layout ? "--layout" : "--kind";
	size_t i;

	memset(out, 0, sizeof *out);
	if (eq == NULL || eq == text || eq[1] == '\0')
		return rs_error_set(err, RS_EINVAL, "%s takes PATTERN=%s, not '%s'", opt,
		                    is_layout ? "in,out or PATTERN=out,in" :
		                    "KIND (linear, embedding, conv, depthwise, groups:N, other)",
		                    text);
	value = eq + 1;
	out->is_layout = is_layout;
	if (is_layout) {
		if (strcmp(value, "in,out") == 0)
			out->layout = RS_LAYOUT_IN_OUT;
		else if (strcmp(value, "out,in") == 0)
			out->layout = RS_LAYOUT_OUT_IN;
		else
			return rs_error_set(err, RS_EINVAL, "--layout '%s': the layout is in,out "
			                    "(stored transposed: Paddle, tfjs, ONNX MatMul) or "
			                    "out,in (PyTorch), not '%s'", text, value);
	} else if (strncmp(value, "groups:", 7) == 0) {
		char *end;
		unsigned long long g = strtoull(value + 7, &end, 10);

		if (*end != '\0' || value[7] < '1' || value[7] > '9' || g > 1u << 24)
			return rs_error_set(err, RS_EINVAL, "--kind '%s': groups:N takes a group "
			                    "count from 1 to 16777216", text);
		out->kind = RS_KIND_GROUPED;
		out->groups = (size_t)g;
	} else {
		for (i = 0; i < NKINDS && strcmp(kind_names[i].name, value) != 0; i++)
			;
		if (i == NKINDS)
			return rs_error_set(err, RS_EINVAL, "--kind '%s': the kind is linear, "
			                    "embedding, conv, depthwise, groups:N or other, not '%s'",
			                    text, value);
		out->kind = kind_names[i].kind;
	}
	out->pattern = rs_xstrndup(text, (size_t)(eq - text));
	return RS_OK;
}

void
rs_role_rule_free(rs_role_rule *rule)
{
	free(rule->pattern);
	rule->pattern = NULL;
}

/* One rule on one tensor it matches. */
static rs_status
apply_rule(const rs_model *m, const rs_role_rule *r, rs_tensor *t, rs_error *err)
{
	char name[128];

	rs_printable(name, sizeof name, t->name);
	if (r->is_layout) {
		if (t->ndim != 2)
			return rs_error_set(err, RS_EINVAL, "%s: --layout '%s=%s' matches '%s', "
			    "which is %zu-D: a layout is for 2-D weights", m->path, r->pattern,
			    rs_tensor_layout_name(r->layout), name, t->ndim);
		t->layout = r->layout;
		return RS_OK;
	}
	switch (r->kind) {
	case RS_KIND_LINEAR:
	case RS_KIND_EMBEDDING:
		if (t->ndim != 2)
			return rs_error_set(err, RS_EINVAL, "%s: --kind '%s=%s' matches '%s', which "
			    "is %zu-D, not a 2-D weight", m->path, r->pattern,
			    r->kind == RS_KIND_LINEAR ? "linear" : "embedding", name, t->ndim);
		t->role = r->kind == RS_KIND_LINEAR ? RS_ROLE_LINEAR : RS_ROLE_EMBEDDING;
		return RS_OK;
	case RS_KIND_OTHER:
		t->role = RS_ROLE_OTHER;
		return RS_OK;
	default:
		break;
	}
	if (t->ndim != 3 && t->ndim != 4)
		return rs_error_set(err, RS_EINVAL, "%s: --kind '%s' matches '%s', which is "
		    "%zu-D: a convolution kernel is (out, in, k) or (out, in, kh, kw)", m->path,
		    r->pattern, name, t->ndim);
	t->role = RS_ROLE_CONV;
	if (r->kind == RS_KIND_CONV)
		t->groups = 1;
	else if (r->kind == RS_KIND_DEPTHWISE) {
		if (t->shape[1] != 1)
			return rs_error_set(err, RS_EINVAL, "%s: --kind '%s=depthwise' matches "
			    "'%s', whose kernel has %zu input channels per group: a depthwise "
			    "kernel has 1", m->path, r->pattern, name, t->shape[1]);
		t->groups = t->shape[0];
	} else {
		if (t->shape[0] % r->groups != 0)
			return rs_error_set(err, RS_EINVAL, "%s: --kind '%s=groups:%zu' matches "
			    "'%s', whose %zu output channels %zu groups do not divide", m->path,
			    r->pattern, r->groups, name, t->shape[0], r->groups);
		t->groups = r->groups;
	}
	return RS_OK;
}

rs_status
rs_roles_apply(rs_model *m, const rs_role_rule *rules, size_t nrules, rs_error *err)
{
	size_t k, i, hits;
	rs_status st;

	for (k = 0; k < nrules; k++) {
		for (i = hits = 0; i < m->ntensors; i++) {
			if (fnmatch(rules[k].pattern, m->tensors[i].name, 0) != 0)
				continue;
			hits++;
			if ((st = apply_rule(m, &rules[k], &m->tensors[i], err)) != RS_OK)
				return st;
		}
		if (hits == 0 && !rules[k].optional)
			return rs_error_set(err, RS_EINVAL, "%s: %s '%s' matches no tensor", m->path,
			                    rules[k].is_layout ? "--layout" : "--kind",
			                    rules[k].pattern);
	}
	return RS_OK;
}

/* The rule as a plan records it, PATTERN=PART[:ROWS],... */
static char *
split_rule_text(const rs_split_rule *r)
{
	char *text = rs_xasprintf("%s=", r->pattern), *next;
	size_t k;

	for (k = 0; k < r->nparts; k++) {
		next = r->rows[k] ? rs_xasprintf("%s%s%s:%zu", text, k ? "," : "", r->names[k],
		                                 r->rows[k]) :
		                    rs_xasprintf("%s%s%s", text, k ? "," : "", r->names[k]);
		free(text);
		text = next;
	}
	return text;
}

rs_status
rs_split_rule_parse(const char *text, rs_split_rule *out, rs_error *err)
{
	const char *eq = strrchr(text, '='), *p;
	size_t k, equal = 0;

	memset(out, 0, sizeof *out);
	if (eq == NULL || eq == text || eq[1] == '\0')
		return rs_error_set(err, RS_EINVAL, "--split takes PATTERN=PART,PART,... or "
		                    "PATTERN=PART:ROWS,..., not '%s'", text);
	for (p = eq + 1; *p; ) {
		size_t len = strcspn(p, ",:");
		char *end;

		if (out->nparts == RS_SPLIT_MAX_PARTS || len == 0) {
			rs_split_rule_free(out);
			return rs_error_set(err, RS_EINVAL, "--split '%s': %s", text, len == 0 ?
			                    "a part needs a name" : "at most 16 parts");
		}
		out->names[out->nparts] = rs_xstrndup(p, len);
		for (k = 0; k < out->nparts; k++)
			if (strcmp(out->names[k], out->names[out->nparts]) == 0) {
				rs_split_rule_free(out);
				return rs_error_set(err, RS_EINVAL, "--split '%s': part '%.*s' named "
				                    "twice", text, (int)len, p);
			}
		p += len;
		if (*p == ':') {
			unsigned long long r = strtoull(p + 1, &end, 10);
			if (end == p + 1 || r == 0 || r > ((size_t)1 << 40)) {
				out->nparts++;
				rs_split_rule_free(out);
				return rs_error_set(err, RS_EINVAL, "--split '%s': rows after ':' must be "
				                    "a count of at least 1", text);
			}
			out->rows[out->nparts] = (size_t)r;
			p = end;
		} else
			equal++;
		out->nparts++;
		if (*p == ',')
			p++;
		else if (*p != '\0') {
			rs_split_rule_free(out);
			return rs_error_set(err, RS_EINVAL, "--split '%s': expected ',' after a part",
			                    text);
		}
	}
	if (out->nparts < 2 || (equal != 0 && equal != out->nparts)) {
		rs_split_rule_free(out);
		return rs_error_set(err, RS_EINVAL, "--split '%s': give two or more parts, all "
		                    "with rows or none", text);
	}
	out->pattern = rs_xstrndup(text, (size_t)(eq - text));
	return RS_OK;
}

void
rs_split_rule_free(rs_split_rule *rule)
{
	size_t k;

	for (k = 0; k < rule->nparts; k++)
		free(rule->names[k]);
	free(rule->pattern);
	memset(rule, 0, sizeof *rule);
}

/* Tensor i replaced by the rule's parts, views of its row slices. */
static rs_status
split_one(rs_model *m, size_t i, const rs_split_rule *r, rs_error *err)
{
	rs_tensor whole = m->tensors[i];
	size_t rows[RS_SPLIT_MAX_PARTS], k, sum = 0;
	char name[128];

	rs_printable(name, sizeof name, whole.name);
	if (whole.ndim != 2 || whole.layout != RS_LAYOUT_OUT_IN)
		return rs_error_set(err, RS_EINVAL, "%s: --split '%s' matches '%s', which is not "
		    "a 2-D weight stored out,in (its parts would not be row slices)", m->path,
		    r->pattern, name);
	for (k = 0; k < r->nparts; k++) {
		rows[k] = r->rows[k] ? r->rows[k] : whole.shape[0] / r->nparts;
		sum += rows[k];
	}
	if (sum != whole.shape[0] || (r->rows[0] == 0 && whole.shape[0] % r->nparts != 0))
		return rs_error_set(err, RS_EINVAL, "%s: --split '%s': '%s' has %zu rows, which "
		    "its %zu parts do not %s", m->path, r->pattern, name, whole.shape[0],
		    r->nparts, r->rows[0] ? "add up to" : "divide evenly");
	replace_by_row_views(m, i, r->nparts, rows, 0, whole.shape[1], r->names);
	return RS_OK;
}

rs_status
rs_roles_split(rs_model *m, const rs_split_rule *rules, size_t nrules, rs_error *err)
{
	size_t k, i, hits;
	rs_status st;

	for (k = 0; k < nrules; k++) {
		for (i = hits = 0; i < m->ntensors; i++) {
			if (fnmatch(rules[k].pattern, m->tensors[i].name, 0) != 0)
				continue;
			hits++;
			if ((st = split_one(m, i, &rules[k], err)) != RS_OK)
				return st;
			i += rules[k].nparts - 1;
		}
		if (hits == 0 && !rules[k].optional)
			return rs_error_set(err, RS_EINVAL, "%s: --split '%s' matches no tensor",
			                    m->path, rules[k].pattern);
		if (hits > 0) {
			m->splits = rs_xreallocarray(m->splits, m->nsplits + 1, sizeof *m->splits);
			m->splits[m->nsplits++] = split_rule_text(&rules[k]);
		}
	}
	return RS_OK;
}
