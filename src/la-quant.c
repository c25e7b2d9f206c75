/*
 * la-quant.c — the quantisers of rankscope/quant.h.
 *
 * Every quantiser produces Q(W) element by element through one function
 * (emit), which also accumulates ||W - Q(W)||^2 on the very values it hands
 * out: the error reported is measured, never a model of the error.
 *
 * The k-means codebook is 1-D, which makes it cheap.  The values are
 * sorted once (a radix sort on order-preserving 64-bit keys) and folded
 * into distinct values with counts and prefix sums of count, value and
 * value^2.  Each cluster is then a contiguous range of the sorted values
 * between two midpoints, so a Lloyd step is k binary searches and k range
 * means, O(k log N) instead of O(k N), and k-means++ seeding keeps its
 * D^2 weights per cluster range in a sum tree, O(log N) per centre.
 * The value sums are double-double, because a cluster's sum is the
 * difference of two prefixes that can be a million times larger.
 *
 * Decisions the header leaves open:
 * - codes are in element order with leading dimension m, like q_out;
 * - binary writes 2 codebook entries (-alpha, +alpha; w >= 0 takes +alpha)
 *   and ternary 3 (-alpha, 0, +alpha), so 2^rs_quantizer_bits(q, bits)
 *   entries are always enough;
 * - k-means cannot have more centres than distinct values; levels is the
 *   number it found, the codebook is padded to 2^b entries with the
 *   largest centre, and the storage still counts 2^b codebook entries
 *   (the header's b N + 32 k, k = 2^b: what apply writes);
 * - an empty matrix quantises to nothing with error 0 and a codebook of
 *   zeros; bits_per_weight is 0 when there are no weights;
 * - weights must be finite (RS_ENUMERIC otherwise): none of the
 *   definitions means anything for NaN or infinity.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rankscope/quant.h"
#include "rankscope/util.h"

#define KMEANS_MAX_ITERATIONS 1000
#define KMEANS_TOLERANCE 1e-12
/* Fixed, so the same weights always get the same codebook. */
#define KMEANS_SEED UINT64_C(0x6b6d65616e732b2b)
/* Cluster ranges up to this many distinct values are summed directly:
 * prefix differences would drown their small weights in rounding. */
#define DIRECT_RANGE 32

static const char *const quantizer_names[RS_QUANT_COUNT] = {
	[RS_QUANT_UNIFORM_TENSOR] = "uniform-tensor",
	[RS_QUANT_UNIFORM_CHANNEL] = "uniform-channel",
	[RS_QUANT_KMEANS] = "kmeans",
	[RS_QUANT_BINARY] = "binary",
	[RS_QUANT_TERNARY] = "ternary",
};

const char *
rs_quantizer_name(rs_quantizer q)
{
	return (unsigned)q < RS_QUANT_COUNT ? quantizer_names[q] : "?";
}

bool
rs_quantizer_parse(const char *name, rs_quantizer *out)
{
	int i;

	for (i = 0; i < RS_QUANT_COUNT; i++)
		if (strcmp(name, quantizer_names[i]) == 0) {
			*out = (rs_quantizer)i;
			return true;
		}
	return false;
}

unsigned
rs_quantizer_bits(rs_quantizer q, unsigned bits)
{
	if (q == RS_QUANT_BINARY)
		return 1;
	if (q == RS_QUANT_TERNARY)
		return 2;
	return bits;
}

uint64_t
rs_quant_codebook_values(size_t rows, rs_quantizer q, unsigned bits, bool full_codebook)
{
	unsigned b = rs_quantizer_bits(q, bits);
	uint64_t levels = b < 63 ? (uint64_t)1 << b : UINT64_MAX / 4;
	uint64_t per = q == RS_QUANT_UNIFORM_CHANNEL ? (uint64_t)rows : 1;

	if (full_codebook)
		return per * levels;
	switch (q) {
	case RS_QUANT_UNIFORM_TENSOR:
	case RS_QUANT_UNIFORM_CHANNEL:
		return 2 * per;                 /* offset and step */
	case RS_QUANT_KMEANS:
		return levels;                  /* the centres */
	default:
		return 1;                       /* binary, ternary: the scale */
	}
}

bool
rs_quant_spells_levels(rs_quantizer q, bool full_codebook)
{
	return full_codebook || q == RS_QUANT_KMEANS;
}

uint64_t
rs_quant_storage_bits(size_t rows, size_t cols, rs_quantizer q, unsigned bits,
                      unsigned value_bits, bool full_codebook)
{
	uint64_t count = (uint64_t)rows * cols;
	unsigned book_bits = rs_quant_spells_levels(q, full_codebook) ? value_bits : 32;

	return rs_quantizer_bits(q, bits) * count +
	       rs_quant_codebook_values(rows, q, bits, full_codebook) * book_bits;
}

/* ---- output ------------------------------------------------------------- */

typedef struct qjob {
	const double *w;
	size_t rows, cols, ld;
	double *q_out;
	uint16_t *codes;
	double err_sq, total_sq;
} qjob;

/* Hands out element (i, j) quantised to q with level index code. */
static void
emit(qjob *job, size_t i, size_t j, double q, unsigned code)
{
	double x = job->w[i + j * job->ld], d = x - q;

	job->err_sq += d * d;
	job->total_sq += x * x;
	if (job->q_out != NULL)
		job->q_out[i + j * job->rows] = q;
	if (job->codes != NULL)
		job->codes[i + j * job->rows] = (uint16_t)code;
}

/* ---- sorting ------------------------------------------------------------ */

/* Maps doubles to unsigned keys in the same order; -0 and +0 become one
 * value, since they quantise alike. */
static uint64_t
order_key(double x)
{
	uint64_t u;

	if (x == 0)
		x = 0.0;
	memcpy(&u, &x, sizeof u);
	return u >> 63 ? ~u : u | UINT64_C(1) << 63;
}

static double
key_value(uint64_t u)
{
	double x;

	u = u >> 63 ? u & ~(UINT64_C(1) << 63) : ~u;
	memcpy(&x, &u, sizeof x);
	return x;
}

/*
 * Stable LSD radix sort, eight bits a pass.  Passes whose digit is shared
 * by every key are skipped: for weights that came from float32 the low 29
 * mantissa bits are zero, so three of the eight passes go.
 */
static void
radix_sort_keys(uint64_t *key, uint64_t *tmp, size_t n)
{
	size_t (*hist)[256], i;
	uint64_t *src = key, *dst = tmp, *t;
	unsigned pass;

	if (n < 2)
		return;
	hist = rs_xcalloc(8, sizeof *hist);
	for (i = 0; i < n; i++)
		for (pass = 0; pass < 8; pass++)
			hist[pass][(key[i] >> (8 * pass)) & 0xff]++;
	for (pass = 0; pass < 8; pass++) {
		size_t *h = hist[pass], total = 0, d;

		if (h[(src[0] >> (8 * pass)) & 0xff] == n)
			continue;
		for (d = 0; d < 256; d++) {
			size_t c = h[d];
			h[d] = total;
			total += c;
		}
		for (i = 0; i < n; i++)
			dst[h[(src[i] >> (8 * pass)) & 0xff]++] = src[i];
		t = src; src = dst; dst = t;
	}
	if (src != key)
		memcpy(key, src, n * sizeof *key);
	free(hist);
}

/* The n = rows cols values (or magnitudes) of w sorted as keys; NULL when
 * memory runs out. */
static uint64_t *
sorted_keys(const double *w, size_t rows, size_t cols, size_t ld, bool magnitudes)
{
	size_t n = rows * cols, i, j, k = 0;
	uint64_t *key = malloc((n ? n : 1) * sizeof *key);
	uint64_t *tmp = malloc((n ? n : 1) * sizeof *tmp);

	if (key == NULL || tmp == NULL) {
		free(key);
		free(tmp);
		return NULL;
	}
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) {
			double x = w[i + j * ld];
			key[k++] = order_key(magnitudes ? fabs(x) : x);
		}
	radix_sort_keys(key, tmp, n);
	free(tmp);
	return key;
}

/* ---- uniform ------------------------------------------------------------ */

/* Level index of x on min + c step, c = 0 .. levels - 1, to the nearest. */
static unsigned
uniform_code(double x, double min, double step, unsigned levels)
{
	double c;

	if (!(step > 0))
		return 0;
	c = round((x - min) / step);
	if (c < 0)
		return 0;
	return c > levels - 1 ? levels - 1 : (unsigned)c;
}

static rs_status
quant_uniform(qjob *job, unsigned bits, bool per_channel, double *codebook,
              rs_error *err)
{
	size_t rows = job->rows, cols = job->cols, nr = per_channel ? rows : 1;
	size_t i, j, r;
	unsigned levels = 1u << bits, c;
	double *lo = malloc((nr ? nr : 1) * sizeof *lo);
	double *hi = malloc((nr ? nr : 1) * sizeof *hi);
	double *step = malloc((nr ? nr : 1) * sizeof *step);

	if (lo == NULL || hi == NULL || step == NULL) {
		free(lo);
		free(hi);
		free(step);
		return rs_error_set(err, RS_ENOMEM,
		    "out of memory for the scales of %zu channels", nr);
	}
	/* An empty tensor or channel gets the range [0, 0]. */
	for (r = 0; r < nr; r++) {
		lo[r] = rows && cols ? INFINITY : 0.0;
		hi[r] = rows && cols ? -INFINITY : 0.0;
	}
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) {
			double x = job->w[i + j * job->ld];
			r = per_channel ? i : 0;
			if (x < lo[r])
				lo[r] = x;
			if (x > hi[r])
				hi[r] = x;
		}
	/* A constant tensor has step 0: every level is the constant. */
	for (r = 0; r < nr; r++)
		step[r] = (hi[r] - lo[r]) / (double)(levels - 1);
	if (codebook != NULL)
		for (r = 0; r < nr; r++)
			for (c = 0; c < levels; c++)
				codebook[r * levels + c] = lo[r] + c * step[r];
	/* The same expression as the codebook's, so codes reproduce q_out
	 * bit for bit. */
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) {
			r = per_channel ? i : 0;
			c = uniform_code(job->w[i + j * job->ld], lo[r], step[r], levels);
			emit(job, i, j, lo[r] + c * step[r], c);
		}
	free(lo);
	free(hi);
	free(step);
	return RS_OK;
}

/*
 * The uniform quantiser's errors at every width 1..max_bits in one pass:
 * the same ranges, steps, codes and summation order as quant_uniform, so
 * each error is bit for bit what rs_quantize reports at that width.
 */
rs_status
rs_quantize_uniform_curve(const double *w, size_t rows, size_t cols, size_t ld,
                          bool per_channel, unsigned max_bits, double *rel_errors,
                          uint64_t *storage, rs_error *err)
{
	size_t nr = per_channel ? rows : 1, i, j, r, n = rows * cols;
	double *lo, *hi, *step, esq[17] = {0}, total = 0;
	unsigned b, c;

	if (max_bits < 1 || max_bits > 16)
		return rs_error_set(err, RS_EINVAL, "uniform curve: 1 to 16 bits, not %u", max_bits);
	if (n > 0 && ld < rows)
		return rs_error_set(err, RS_EINVAL,
		    "leading dimension %zu is less than the %zu rows", ld, rows);
	lo = malloc((nr ? nr : 1) * sizeof *lo);
	hi = malloc((nr ? nr : 1) * sizeof *hi);
	step = malloc((nr ? nr : 1) * (max_bits + 1) * sizeof *step);
	if (lo == NULL || hi == NULL || step == NULL) {
		free(lo);
		free(hi);
		free(step);
		return rs_error_set(err, RS_ENOMEM, "out of memory for the scales of %zu channels",
		                    nr);
	}
	for (r = 0; r < nr; r++) {
		lo[r] = rows && cols ? INFINITY : 0.0;
		hi[r] = rows && cols ? -INFINITY : 0.0;
	}
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) {
			double x = w[i + j * ld];
			if (!isfinite(x)) {
				free(lo);
				free(hi);
				free(step);
				return rs_error_set(err, RS_ENUMERIC, "cannot quantise: element "
				                    "(%zu, %zu) is %g", i, j, x);
			}
			r = per_channel ? i : 0;
			if (x < lo[r])
				lo[r] = x;
			if (x > hi[r])
				hi[r] = x;
		}
	for (r = 0; r < nr; r++)
		for (b = 1; b <= max_bits; b++)
			step[r * (max_bits + 1) + b] = (hi[r] - lo[r]) / (double)((1u << b) - 1);
	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++) {
			double x = w[i + j * ld];
			r = per_channel ? i : 0;
			total += x * x;
			for (b = 1; b <= max_bits; b++) {
				double st = step[r * (max_bits + 1) + b], d;
				c = uniform_code(x, lo[r], st, 1u << b);
				d = x - (lo[r] + c * st);
				esq[b] += d * d;
			}
		}
	for (b = 1; b <= max_bits; b++) {
		rel_errors[b] = total > 0 ? sqrt(esq[b] / total) : 0.0;
		storage[b] = rs_quant_storage_bits(rows, cols, per_channel ? RS_QUANT_UNIFORM_CHANNEL :
		                                   RS_QUANT_UNIFORM_TENSOR, b, 32, false);
	}
	free(lo);
	free(hi);
	free(step);
	return RS_OK;
}

/* ---- binary and ternary ------------------------------------------------- */

static void
quant_binary(qjob *job, double *codebook)
{
	size_t n = job->rows * job->cols, i, j;
	double sum = 0, alpha;

	for (j = 0; j < job->cols; j++)
		for (i = 0; i < job->rows; i++)
			sum += fabs(job->w[i + j * job->ld]);
	/* For fixed signs s, ||W - alpha s||^2 is least at alpha = <W, s> / N. */
	alpha = n ? sum / (double)n : 0.0;
	if (codebook != NULL) {
		codebook[0] = -alpha;
		codebook[1] = alpha;
	}
	for (j = 0; j < job->cols; j++)
		for (i = 0; i < job->rows; i++) {
			bool neg = job->w[i + j * job->ld] < 0;
			emit(job, i, j, neg ? -alpha : alpha, neg ? 0 : 1);
		}
}

/*
 * Keeping the j largest magnitudes at alpha = their mean S_j / j leaves
 * the error sum w^2 - S_j^2 / j, so the best j maximises S_j^2 / j.  Along
 * a run of equal magnitudes that function of j is convex, so its maximum
 * is at a run's end: only there is j evaluated, and the kept set is
 * exactly {|w| >= threshold}.
 */
static rs_status
quant_ternary(qjob *job, double *codebook, rs_error *err)
{
	size_t n = job->rows * job->cols, i, j, k, taken = 0, best_j = 0;
	uint64_t *key = sorted_keys(job->w, job->rows, job->cols, job->ld, true);
	double s = 0, best = 0, best_s = 0, alpha, threshold = INFINITY;

	if (key == NULL)
		return rs_error_set(err, RS_ENOMEM,
		    "out of memory sorting %zu magnitudes", n);
	for (k = n; k > 0; k--) {
		double a = key_value(key[k - 1]);
		s += a;
		taken++;
		if (k == 1 || key[k - 2] != key[k - 1]) {
			double gain = s * s / (double)taken;
			if (gain > best) {
				best = gain;
				best_j = taken;
				best_s = s;
				threshold = a;
			}
		}
	}
	free(key);
	alpha = best_j ? best_s / (double)best_j : 0.0;
	if (codebook != NULL) {
		codebook[0] = -alpha;
		codebook[1] = 0.0;
		codebook[2] = alpha;
	}
	for (j = 0; j < job->cols; j++)
		for (i = 0; i < job->rows; i++) {
			double x = job->w[i + j * job->ld];
			if (fabs(x) < threshold)
				emit(job, i, j, 0.0, 1);
			else if (x < 0)
				emit(job, i, j, -alpha, 0);
			else
				emit(job, i, j, alpha, 2);
		}
	return RS_OK;
}

/* ---- k-means: the sorted values ------------------------------------------ */

typedef struct kdata {
	size_t d;          /* distinct values */
	double *v;         /* d values, strictly ascending */
	double *p0;        /* d + 1 prefix counts */
	double *p1, *p1lo; /* d + 1 prefix sums of count * value, double-double */
	double *p2;        /* d + 1 prefix sums of count * value^2 */
} kdata;

static void
kdata_free(kdata *kd)
{
	free(kd->v);
	free(kd->p0);
	free(kd->p1);
	free(kd->p1lo);
	free(kd->p2);
}

/* Knuth's TwoSum: a + b = *s + (returned error), exactly. */
static double
two_sum(double a, double b, double *s)
{
	double t = a + b, bp = t - a;

	*s = t;
	return (a - (t - bp)) + (b - bp);
}

static bool
kdata_build(kdata *kd, const double *w, size_t rows, size_t cols, size_t ld)
{
	size_t n = rows * cols, i, d = 0;
	uint64_t *key = sorted_keys(w, rows, cols, ld, false);
	double hi = 0, lo = 0, sq = 0;

	memset(kd, 0, sizeof *kd);
	if (key == NULL)
		return false;
	for (i = 0; i < n; i++)
		if (i == 0 || key[i] != key[i - 1])
			d++;
	kd->d = d;
	kd->v = malloc((d ? d : 1) * sizeof *kd->v);
	kd->p0 = malloc((d + 1) * sizeof *kd->p0);
	if (kd->v == NULL || kd->p0 == NULL) {
		free(key);
		return false;
	}
	kd->p0[0] = 0;
	for (i = 0, d = 0; i < n; i++) {
		if (i == 0 || key[i] != key[i - 1]) {
			kd->v[d] = key_value(key[i]);
			kd->p0[d + 1] = kd->p0[d];
			d++;
		}
		kd->p0[d] += 1;
	}
	free(key);
	kd->p1 = malloc((kd->d + 1) * sizeof *kd->p1);
	kd->p1lo = malloc((kd->d + 1) * sizeof *kd->p1lo);
	kd->p2 = malloc((kd->d + 1) * sizeof *kd->p2);
	if (kd->p1 == NULL || kd->p1lo == NULL || kd->p2 == NULL)
		return false;
	kd->p1[0] = kd->p1lo[0] = kd->p2[0] = 0;
	for (i = 0; i < kd->d; i++) {
		double cnt = kd->p0[i + 1] - kd->p0[i], x = kd->v[i];
		double prod = cnt * x;
		/* The product rounds relative to itself, harmless; the running
		 * sum's own rounding is what a difference of prefixes would
		 * magnify, so that is what is kept. */
		lo += two_sum(hi, prod, &hi);
		sq += prod * x;
		kd->p1[i + 1] = hi;
		kd->p1lo[i + 1] = lo;
		kd->p2[i + 1] = sq;
	}
	return true;
}

static double
range_count(const kdata *kd, size_t a, size_t b)
{
	return kd->p0[b] - kd->p0[a];
}

static double
range_sum(const kdata *kd, size_t a, size_t b)
{
	return (kd->p1[b] - kd->p1[a]) + (kd->p1lo[b] - kd->p1lo[a]);
}

/* sum over distinct values a..b-1 of count (v - c)^2 */
static double
range_weight(const kdata *kd, size_t a, size_t b, double c)
{
	double s;
	size_t i;

	if (b - a <= DIRECT_RANGE) {
		for (s = 0, i = a; i < b; i++)
			s += (kd->p0[i + 1] - kd->p0[i]) * (kd->v[i] - c) * (kd->v[i] - c);
		return s;
	}
	s = (kd->p2[b] - kd->p2[a]) - 2 * c * range_sum(kd, a, b) +
	    c * c * range_count(kd, a, b);
	return s > 0 ? s : 0.0;
}

/*
 * Whether x belongs to centre ca rather than its upper neighbour cb
 * (ca < cb).  Written as a comparison of the two distances, so a value is
 * always given to a nearest centre as floating point measures it (a tie
 * goes down), and monotone in x, so each cluster is a contiguous range.
 */
static bool
goes_below(double x, double ca, double cb)
{
	return x - ca <= cb - x;
}

/* First index in [from, to) whose value belongs above ca (next centre cb);
 * to when there is none. */
static size_t
boundary(const kdata *kd, size_t from, size_t to, double ca, double cb)
{
	while (from < to) {
		size_t mid = from + (to - from) / 2;
		if (goes_below(kd->v[mid], ca, cb))
			from = mid + 1;
		else
			to = mid;
	}
	return from;
}

/* Index of the centre x belongs to among c[0..k-1] (ascending). */
static size_t
nearest_centre(const double *c, size_t k, double x)
{
	size_t lo = 0, hi = k - 1;

	/* the smallest t with t = k - 1 or x going below the pair (t, t+1) */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (goes_below(x, c[mid], c[mid + 1]))
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* ---- k-means++ seeding --------------------------------------------------- */

/* xorshift64*: small, fast and the same everywhere. */
static double
rng_uniform(uint64_t *state)
{
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return (double)((*state * UINT64_C(0x2545f4914f6cdd1d)) >> 11) * 0x1.0p-53;
}

#define NONE SIZE_MAX

/*
 * Centres during seeding, by insertion order: pos is the index of the
 * centre's value in kd->v, prev/next link them in value order, and tree
 * is a sum tree over the D^2 weights of the ranges of values nearest to
 * each (leaves at leaf + id), for sampling in O(log k).  Inner nodes are
 * recomputed from their children rather than patched by differences, so
 * the sums never drift, however much larger the first weights were.
 */
typedef struct seeds {
	size_t count, leaf;
	size_t *pos, *prev, *next;
	double *tree;
} seeds;

static void
tree_set(seeds *s, size_t id, double weight)
{
	size_t i = s->leaf + id;

	s->tree[i] = weight;
	for (i /= 2; i > 0; i /= 2)
		s->tree[i] = s->tree[2 * i] + s->tree[2 * i + 1];
}

/* The id whose share of the total weight holds target; *rem is what is
 * left of target inside it. */
static size_t
tree_find(const seeds *s, double target, double *rem)
{
	size_t i = 1;

	while (i < s->leaf) {
		if (target < s->tree[2 * i] || s->tree[2 * i + 1] <= 0) {
			i = 2 * i;
		} else {
			target -= s->tree[2 * i];
			i = 2 * i + 1;
		}
	}
	*rem = target;
	return i - s->leaf;
}

/* The range [*lo, *hi) of distinct values nearest to centre id. */
static void
seed_range(const kdata *kd, const seeds *s, size_t id, size_t *lo, size_t *hi)
{
	size_t p = s->prev[id], q = s->next[id], at = s->pos[id];

	*lo = p == NONE ? 0 : boundary(kd, s->pos[p] + 1, at + 1, kd->v[s->pos[p]], kd->v[at]);
	*hi = q == NONE ? kd->d : boundary(kd, at + 1, s->pos[q] + 1, kd->v[at], kd->v[s->pos[q]]);
}

static void
seed_reweigh(const kdata *kd, seeds *s, size_t id)
{
	size_t lo, hi;

	if (id == NONE)
		return;
	seed_range(kd, s, id, &lo, &hi);
	tree_set(s, id, range_weight(kd, lo, hi, kd->v[s->pos[id]]));
}

/* Adds the value at index at, which lies in the range of centre near. */
static void
seed_insert(const kdata *kd, seeds *s, size_t near, size_t at)
{
	size_t id = s->count++, p, q;

	s->pos[id] = at;
	if (near == NONE) {
		p = q = NONE;
	} else if (at < s->pos[near]) {
		p = s->prev[near];
		q = near;
	} else {
		p = near;
		q = s->next[near];
	}
	s->prev[id] = p;
	s->next[id] = q;
	if (p != NONE)
		s->next[p] = id;
	if (q != NONE)
		s->prev[q] = id;
	seed_reweigh(kd, s, p);
	seed_reweigh(kd, s, id);
	seed_reweigh(kd, s, q);
}

/* In the range [lo, hi) around centre c, the first value whose
 * cumulative weight passes rem. */
static size_t
seed_pick(const kdata *kd, size_t lo, size_t hi, double c, double rem)
{
	size_t a = lo, b = hi - 1;

	while (a < b) {
		size_t mid = a + (b - a) / 2;
		if (range_weight(kd, lo, mid + 1, c) > rem)
			b = mid;
		else
			a = mid + 1;
	}
	return a;
}

/* The value farthest from its centre (lowest index on ties), with that
 * centre; false when every value is a centre. */
static bool
seed_farthest(const kdata *kd, const seeds *s, size_t *near, size_t *at)
{
	double best = 0;
	size_t id, lo, hi;

	for (id = 0; id < s->count; id++) {
		double c = kd->v[s->pos[id]], dl, dh;
		seed_range(kd, s, id, &lo, &hi);
		dl = fabs(kd->v[lo] - c);
		dh = fabs(kd->v[hi - 1] - c);
		if (dl > best || (dl == best && dl > 0 && lo < *at)) {
			best = dl;
			*at = lo;
			*near = id;
		}
		if (dh > best || (dh == best && dh > 0 && hi - 1 < *at)) {
			best = dh;
			*at = hi - 1;
			*near = id;
		}
	}
	return best > 0;
}

/*
 * k-means++ over the distinct values weighted by their counts: the first
 * centre by count, each further one with probability proportional to
 * count x squared distance to the nearest centre.  When rounding leaves
 * no usable weight (or picks a centre again), the farthest value is taken
 * instead, so the result is k distinct values, or every distinct value
 * when there are fewer.  Writes the centres ascending; returns how many.
 */
static size_t
kmeans_seed(const kdata *kd, size_t k, double *centres)
{
	seeds s;
	uint64_t rng = KMEANS_SEED;
	size_t near, at, lo, hi, id, i;
	double target, rem;

	if (kd->d == 0)
		return 0;
	if (k > kd->d)
		k = kd->d;
	s.count = 0;
	for (s.leaf = 1; s.leaf < k; s.leaf *= 2)
		;
	s.pos = rs_xmalloc(k * sizeof *s.pos);
	s.prev = rs_xmalloc(k * sizeof *s.prev);
	s.next = rs_xmalloc(k * sizeof *s.next);
	s.tree = rs_xcalloc(2 * s.leaf, sizeof *s.tree);

	/* the first centre: a value drawn by count */
	target = rng_uniform(&rng) * kd->p0[kd->d];
	lo = 0;
	hi = kd->d - 1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (kd->p0[mid + 1] > target)
			hi = mid;
		else
			lo = mid + 1;
	}
	seed_insert(kd, &s, NONE, lo);

	while (s.count < k) {
		double total = s.tree[1];

		near = NONE;
		at = NONE;
		if (total > 0) {
			id = tree_find(&s, rng_uniform(&rng) * total, &rem);
			if (id >= s.count)
				id = s.count - 1;
			seed_range(kd, &s, id, &lo, &hi);
			i = seed_pick(kd, lo, hi, kd->v[s.pos[id]], rem);
			if (kd->v[i] != kd->v[s.pos[id]]) {
				near = id;
				at = i;
			}
		}
		if (at == NONE && !seed_farthest(kd, &s, &near, &at))
			break;
		seed_insert(kd, &s, near, at);
	}

	/* walk the list from the smallest centre */
	for (id = 0; s.prev[id] != NONE; id = s.prev[id])
		;
	for (i = 0; id != NONE; id = s.next[id])
		centres[i++] = kd->v[s.pos[id]];
	k = s.count;
	free(s.pos);
	free(s.prev);
	free(s.next);
	free(s.tree);
	return k;
}

/* ---- k-means: Lloyd iterations ------------------------------------------ */

/*
 * boundary() from `from` to the end, galloping first: with many centres
 * a cluster is a few values long, and doubling strides from where the
 * last one ended stays in cache where a bisection of all N would not.
 */
static size_t
boundary_after(const kdata *kd, size_t from, double ca, double cb)
{
	size_t lo = from, hi = from, step = 1;

	/* everything before lo goes below; hi goes above or is the end */
	while (hi < kd->d && goes_below(kd->v[hi], ca, cb)) {
		lo = hi + 1;
		hi = kd->d - hi > step ? hi + step : kd->d;
		step *= 2;
	}
	return boundary(kd, lo, hi, ca, cb);
}

/* end[t] = one past the last distinct value nearest to centre t. */
static void
cluster_ends(const kdata *kd, const double *c, size_t k, size_t *end)
{
	size_t t, from = 0;

	for (t = 0; t + 1 < k; t++)
		from = end[t] = boundary_after(kd, from, c[t], c[t + 1]);
	end[k - 1] = kd->d;
}

typedef struct candidate {
	double dist;
	size_t at;
} candidate;

static int
candidate_cmp(const void *pa, const void *pb)
{
	const candidate *a = pa, *b = pb;

	if (a->dist != b->dist)
		return a->dist > b->dist ? -1 : 1;
	return (a->at > b->at) - (a->at < b->at);
}

static int
double_cmp(const void *pa, const void *pb)
{
	double a = *(const double *)pa, b = *(const double *)pb;

	return (a > b) - (a < b);
}

/*
 * Brings the s centres c[0..s-1] (ascending, distinct) back up to k by
 * adding the values with the largest errors under them.  The farthest
 * value of a cluster is one of its ends, so the ends of every cluster are
 * the candidates; largest distance first, lowest index on ties.  A
 * candidate is never a centre (its distance to the nearest one is
 * positive), and there is one as long as s < k <= distinct values.
 */
static void
refill_centres(const kdata *kd, double *c, size_t s, size_t k, size_t *end,
               candidate *cand)
{
	while (s < k) {
		size_t t, nc = 0, add;

		cluster_ends(kd, c, s, end);
		for (t = 0; t < s; t++) {
			size_t lo = t ? end[t - 1] : 0, hi = end[t];
			if (lo == hi)
				continue;
			cand[nc].dist = fabs(kd->v[lo] - c[t]);
			cand[nc++].at = lo;
			if (hi - 1 > lo) {
				cand[nc].dist = fabs(kd->v[hi - 1] - c[t]);
				cand[nc++].at = hi - 1;
			}
		}
		qsort(cand, nc, sizeof *cand, candidate_cmp);
		for (add = 0; add < nc && s < k && cand[add].dist > 0; add++)
			c[s++] = kd->v[cand[add].at];
		qsort(c, s, sizeof *c, double_cmp);
		if (add == 0)
			break;          /* cannot happen while k <= distinct values */
	}
}

/*
 * Lloyd iterations on k ascending centres until none moves by more than
 * tol, or KMEANS_MAX_ITERATIONS.  Returns the iterations done.
 */
static size_t
kmeans_lloyd(const kdata *kd, double *c, size_t k, double tol)
{
	size_t *end = rs_xmalloc(k * sizeof *end), it, t;
	double *next = rs_xmalloc(k * sizeof *next);
	candidate *cand = rs_xmalloc(2 * k * sizeof *cand);

	for (it = 1; it <= KMEANS_MAX_ITERATIONS; it++) {
		size_t kept = 0;
		double moved = 0;

		cluster_ends(kd, c, k, end);
		for (t = 0; t < k; t++) {
			size_t lo = t ? end[t - 1] : 0, hi = end[t];
			double mean;
			if (lo == hi)
				continue;
			/* The mean of a range lies within it; rounding must not
			 * push it out, or neighbouring centres could meet. */
			mean = range_sum(kd, lo, hi) / range_count(kd, lo, hi);
			if (mean < kd->v[lo])
				mean = kd->v[lo];
			if (mean > kd->v[hi - 1])
				mean = kd->v[hi - 1];
			next[kept++] = mean;
		}
		if (kept < k) {
			/* empty clusters: reseeded, and the loop goes on */
			refill_centres(kd, next, kept, k, end, cand);
			moved = INFINITY;
		} else {
			for (t = 0; t < k; t++)
				if (fabs(next[t] - c[t]) > moved)
					moved = fabs(next[t] - c[t]);
		}
		memcpy(c, next, k * sizeof *c);
		if (moved <= tol)
			break;
	}
	free(end);
	free(next);
	free(cand);
	return it > KMEANS_MAX_ITERATIONS ? KMEANS_MAX_ITERATIONS : it;
}

static rs_status
quant_kmeans(qjob *job, unsigned bits, double *codebook, size_t *levels,
             size_t *iterations, rs_error *err)
{
	size_t k = (size_t)1 << bits, kk = 0, i, j, t;
	double *c = rs_xmalloc(k * sizeof *c);
	kdata kd;

	if (!kdata_build(&kd, job->w, job->rows, job->cols, job->ld)) {
		kdata_free(&kd);
		free(c);
		return rs_error_set(err, RS_ENOMEM,
		    "out of memory sorting the %zux%zu values for k-means",
		    job->rows, job->cols);
	}
	*iterations = 0;
	if (kd.d > 0) {
		double tol = KMEANS_TOLERANCE * (kd.v[kd.d - 1] - kd.v[0]);
		kk = kmeans_seed(&kd, k, c);
		*iterations = kmeans_lloyd(&kd, c, kk, tol);
	}
	kdata_free(&kd);
	if (codebook != NULL)
		for (t = 0; t < k; t++)
			codebook[t] = t < kk ? c[t] : kk ? c[kk - 1] : 0.0;
	for (j = 0; j < job->cols; j++)
		for (i = 0; i < job->rows; i++) {
			t = nearest_centre(c, kk, job->w[i + j * job->ld]);
			emit(job, i, j, c[t], (unsigned)t);
		}
	*levels = kk;
	free(c);
	return RS_OK;
}

static rs_status check_finite(const double *w, size_t rows, size_t cols, size_t ld,
                              rs_error *err);

/*
 * The k-means curve over 1..max_bits from one sort: the data preparation
 * (sorting, de-duplication, prefix sums) dominates a single k-means run, so
 * sharing it makes the whole curve cost about as much as two runs.  Each
 * width's codebook is exactly the one rs_quantize finds (same data, same
 * seeding, same iterations); its error is summed over the distinct values
 * with their counts.
 */
rs_status
rs_quantize_kmeans_curve(const double *w, size_t rows, size_t cols, size_t ld,
                         unsigned max_bits, double *rel_errors, uint64_t *storage,
                         rs_error *err)
{
	size_t n = rows * cols, i, t;
	unsigned b;
	double *c, total = 0;
	kdata kd;
	rs_status st;

	if (max_bits < 1 || max_bits > 16)
		return rs_error_set(err, RS_EINVAL, "k-means curve: 1 to 16 bits, not %u", max_bits);
	if (n > 0 && ld < rows)
		return rs_error_set(err, RS_EINVAL,
		    "leading dimension %zu is less than the %zu rows", ld, rows);
	if ((st = check_finite(w, rows, cols, ld, err)) != RS_OK)
		return st;
	if (!kdata_build(&kd, w, rows, cols, ld)) {
		kdata_free(&kd);
		return rs_error_set(err, RS_ENOMEM,
		    "out of memory sorting the %zux%zu values for k-means", rows, cols);
	}
	for (i = 0; i < kd.d; i++)
		total += (kd.p0[i + 1] - kd.p0[i]) * kd.v[i] * kd.v[i];
	c = rs_xmalloc(((size_t)1 << max_bits) * sizeof *c);
	for (b = 1; b <= max_bits; b++) {
		size_t kk = 0;
		double sse = 0;
		if (kd.d > 0) {
			double tol = KMEANS_TOLERANCE * (kd.v[kd.d - 1] - kd.v[0]);
			kk = kmeans_seed(&kd, (size_t)1 << b, c);
			kmeans_lloyd(&kd, c, kk, tol);
		}
		for (i = 0; i < kd.d && kk > 0; i++) {
			double e;
			t = nearest_centre(c, kk, kd.v[i]);
			e = kd.v[i] - c[t];
			sse += (kd.p0[i + 1] - kd.p0[i]) * e * e;
		}
		rel_errors[b] = total > 0 ? sqrt(sse / total) : 0.0;
		storage[b] = rs_quant_storage_bits(rows, cols, RS_QUANT_KMEANS, b, 32, false);
	}
	free(c);
	kdata_free(&kd);
	return RS_OK;
}

/* ---- entry point ---------------------------------------------------------- */

static rs_status
check_finite(const double *w, size_t rows, size_t cols, size_t ld, rs_error *err)
{
	size_t i, j;

	for (j = 0; j < cols; j++)
		for (i = 0; i < rows; i++)
			if (!isfinite(w[i + j * ld]))
				return rs_error_set(err, RS_ENUMERIC,
				    "cannot quantise: element (%zu, %zu) is %g", i, j,
				    w[i + j * ld]);
	return RS_OK;
}

rs_status
rs_quantize(const double *w, size_t rows, size_t cols, size_t ld,
            rs_quantizer q, unsigned bits, double *q_out,
            uint16_t *codes, double *codebook, rs_quant_result *result,
            rs_error *err)
{
	qjob job = {w, rows, cols, ld, q_out, codes, 0, 0};
	rs_quant_result r = {0};
	size_t n, levels = 0, iterations = 0;
	unsigned b = rs_quantizer_bits(q, bits);
	rs_status st = RS_OK;

	if ((unsigned)q >= RS_QUANT_COUNT)
		return rs_error_set(err, RS_EINVAL, "unknown quantiser %d", (int)q);
	if (b < 1 || b > 16)
		return rs_error_set(err, RS_EINVAL,
		    "%s quantisation takes 1 to 16 bits, not %u", rs_quantizer_name(q), bits);
	if (rs_mul_overflows(rows, cols, &n))
		return rs_error_set(err, RS_EINVAL, "a %zux%zu matrix is too large", rows, cols);
	if (n > 0 && ld < rows)
		return rs_error_set(err, RS_EINVAL,
		    "leading dimension %zu is less than the %zu rows", ld, rows);
	if ((st = check_finite(w, rows, cols, ld, err)) != RS_OK)
		return st;

	switch (q) {
	case RS_QUANT_UNIFORM_TENSOR:
	case RS_QUANT_UNIFORM_CHANNEL: {
		bool per_channel = q == RS_QUANT_UNIFORM_CHANNEL;
		st = quant_uniform(&job, b, per_channel, codebook, err);
		levels = (size_t)1 << b;
		break;
	}
	case RS_QUANT_KMEANS:
		st = quant_kmeans(&job, b, codebook, &levels, &iterations, err);
		break;
	case RS_QUANT_BINARY:
		quant_binary(&job, codebook);
		levels = 2;
		break;
	case RS_QUANT_TERNARY:
		st = quant_ternary(&job, codebook, err);
		levels = 3;
		break;
	case RS_QUANT_COUNT:
		break;
	}
	if (st != RS_OK)
		return st;
	r.rel_error = job.total_sq > 0 ? sqrt(job.err_sq / job.total_sq) : 0.0;
	r.storage_bits = rs_quant_storage_bits(rows, cols, q, bits, 32, false);
	r.bits_per_weight = n ? (double)r.storage_bits / (double)n : 0.0;
	r.levels = (unsigned)levels;
	r.iterations = iterations;
	if (result != NULL)
		*result = r;
	return RS_OK;
}
