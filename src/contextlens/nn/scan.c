/* The word-vector scan: int8 dot products of queries with every row of a table, keeping for
   each query only the rows that may still be among its k best (nn/scan.py holds the bounds).

   table   uint8 [groups, quads, 8, 4]: row 8g + l, values 4j..4j+3 at [g, j, l, :], each value
           stored as v + 128 with v an int8 in [-127, 127] (zero rows and values pad it)
   queries int8 [nq, 4 · quads], each value in [-63, 63]

   raw(q, row) = Σ q_i (v_i + 128) is exact in int32 (|raw| ≤ 4 · quads · 63 · 255), and equals
   q · v plus a constant of the query, so one query's rows compare by raw. A query keeps the k
   best raw scores seen (a min-heap) and every row whose raw is at least the k-th best minus its
   `margin`; the rows `exclude` and rows from r on never count. The rows kept are then scored
   exactly against the float32 query and ranked (`rank_exactly`). With AVX2, 8 rows × 4 values are
   multiplied in one vpmaddubsw (u8 × s8 pairs summed to int16: |2 · 255 · 63| < 2^15, never
   saturating) and vpmaddwd; the scalar code computes the same sums. */

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#define LANES 8     /* rows interleaved in a group */
#define NG 2        /* groups scored together (scan.py's GROUPS: the table holds a multiple) */
#define NQ 4        /* queries scored together */
#define CHUNK 256   /* groups (2,048 rows) scored against a block of queries while in L2 */
#define QBLOCK 64   /* queries of one work item */
_Static_assert(CHUNK % NG == 0, "a chunk holds whole blocks of NG groups");

typedef struct {
    const int32_t *exclude;
    int ne, r, k, size, cap, count, overflow;
    int32_t margin, floor; /* keep a row when its raw > floor */
    int32_t *heap;         /* the k best raw scores so far, smallest first */
    int32_t *rows, *raw;   /* the rows kept, and their raw scores */
} query_state;

static void sift_down(int32_t *h, int n, int i) {
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && h[c + 1] < h[c]) c++;
        if (h[i] <= h[c]) return;
        int32_t t = h[i];
        h[i] = h[c];
        h[c] = t;
        i = c;
    }
}

static void push(int32_t *h, int n, int32_t x) { /* h holds n values and has room for one more */
    int i = n;
    h[i] = x;
    while (i > 0 && h[(i - 1) / 2] > h[i]) {
        int32_t t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static void compact(query_state *s) {
    int n = 0;
    for (int i = 0; i < s->count; i++)
        if (s->raw[i] > s->floor) {
            s->rows[n] = s->rows[i];
            s->raw[n++] = s->raw[i];
        }
    s->count = n;
}

static void consider(query_state *s, int row, int32_t raw) {
    if (row >= s->r || raw <= s->floor) return;
    for (int e = 0; e < s->ne; e++)
        if (s->exclude[e] == row) return;
    if (s->size < s->k) {
        push(s->heap, s->size++, raw);
    } else if (raw > s->heap[0]) {
        s->heap[0] = raw;
        sift_down(s->heap, s->size, 0);
    }
    if (s->size == s->k) s->floor = s->heap[0] - s->margin - 1;
    if (s->overflow) return;
    if (s->count == s->cap) compact(s);
    if (s->count == s->cap) {
        s->overflow = 1;
        return;
    }
    s->rows[s->count] = row;
    s->raw[s->count++] = raw;
}

static void consider_lanes(query_state *s, int row0, const int32_t *raw, int bits) {
    for (; bits; bits &= bits - 1) {
        int lane = __builtin_ctz(bits);
        consider(s, row0 + lane, raw[lane]);
    }
}

#ifdef __AVX2__
/* NG groups from group g against nq ≤ width queries (width: NQ, or 1 for a single query) */
static inline __attribute__((always_inline)) void
score_groups(const uint8_t *table, long g, int quads, const int8_t *q, int qlen, query_state *s,
             int nq, int width) {
    __m256i acc[NQ][NG];
    const __m256i ones = _mm256_set1_epi16(1);
    const int8_t *qs[NQ];
    for (int i = 0; i < width; i++) {
        qs[i] = q + (long)(i < nq ? i : nq - 1) * qlen;
        for (int b = 0; b < NG; b++) acc[i][b] = _mm256_setzero_si256();
    }
    const uint8_t *t = table + g * quads * 32;
    for (int j = 0; j < quads; j++) {
        __m256i v[NG];
        for (int b = 0; b < NG; b++)
            v[b] = _mm256_loadu_si256((const __m256i *)(t + ((long)b * quads + j) * 32));
        for (int i = 0; i < width; i++) {
            int32_t four;
            memcpy(&four, qs[i] + 4 * j, 4);
            __m256i x = _mm256_set1_epi32(four);
            for (int b = 0; b < NG; b++)
                acc[i][b] = _mm256_add_epi32(
                    acc[i][b], _mm256_madd_epi16(_mm256_maddubs_epi16(v[b], x), ones));
        }
    }
    for (int i = 0; i < nq; i++)
        for (int b = 0; b < NG; b++) {
            __m256i above = _mm256_cmpgt_epi32(acc[i][b], _mm256_set1_epi32(s[i].floor));
            int bits = _mm256_movemask_ps(_mm256_castsi256_ps(above));
            if (bits) {
                int32_t raw[LANES];
                _mm256_storeu_si256((__m256i *)raw, acc[i][b]);
                consider_lanes(&s[i], (int)((g + b) * LANES), raw, bits);
            }
        }
}

static void score_block(const uint8_t *table, long g, int quads, const int8_t *q, int qlen,
                        query_state *s, int nq) {
    if (nq == 1)
        score_groups(table, g, quads, q, qlen, s, 1, 1);
    else
        score_groups(table, g, quads, q, qlen, s, nq, NQ);
}
#else
static void score_block(const uint8_t *table, long g, int quads, const int8_t *q, int qlen,
                        query_state *s, int nq) {
    for (int i = 0; i < nq; i++)
        for (int b = 0; b < NG; b++) {
            const uint8_t *t = table + (g + b) * quads * 32;
            int32_t raw[LANES] = {0};
            int bits = 0;
            for (int j = 0; j < quads; j++)
                for (int l = 0; l < LANES; l++)
                    for (int u = 0; u < 4; u++)
                        raw[l] += t[(j * LANES + l) * 4 + u] * q[(long)i * qlen + 4 * j + u];
            for (int l = 0; l < LANES; l++) bits |= (raw[l] > s[i].floor) << l;
            consider_lanes(&s[i], (int)((g + b) * LANES), raw, bits);
        }
}
#endif

typedef struct {
    float score;
    int32_t row;
} scored;

static int better_first(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

/* The k best of a query's kept rows by exact cosine: float64 sums of the float32 products
   (each exact), rounded to float32; equal cosines rank the earlier row first. */
static void rank_exactly(const query_state *s, const float *unit, int d, const float *q,
                         scored *tmp, int32_t *best, float *best_score) {
    for (int c = 0; c < s->count; c++) {
        const float *u = unit + (long)s->rows[c] * d;
        double sum = 0;
        for (int i = 0; i < d; i++) sum += (double)u[i] * (double)q[i];
        tmp[c] = (scored){(float)sum, s->rows[c]};
    }
    qsort(tmp, s->count, sizeof(scored), better_first);
    for (int j = 0; j < s->k; j++) {
        best[j] = j < s->count ? tmp[j].row : -1;
        best_score[j] = j < s->count ? tmp[j].score : -INFINITY;
    }
}

/* Queries [q0, q1) against the first `groups` groups. */
static int scan_block(const uint8_t *table, int quads, long groups, const int8_t *queries,
                      int q0, int q1, const int32_t *exclude, int ne, const int32_t *margin,
                      int k, int r, int cap, const float *unit, int d, const float *fq,
                      int32_t *best, float *best_score, int32_t *overflow) {
    int n = q1 - q0, qlen = 4 * quads;
    query_state s[QBLOCK];
    int32_t *heaps = malloc(sizeof(int32_t) * (size_t)n * k);
    int32_t *kept = malloc(sizeof(int32_t) * 2 * (size_t)n * cap);
    scored *tmp = malloc(sizeof(scored) * (size_t)cap);
    if (!heaps || !kept || !tmp) {
        free(heaps);
        free(kept);
        free(tmp);
        return -2;
    }
    for (int i = 0; i < n; i++) {
        int32_t *rows = kept + 2 * (long)i * cap;
        s[i] = (query_state){exclude + (long)(q0 + i) * ne, ne, r, k, 0, cap, 0, 0,
                             margin[q0 + i], INT32_MIN, heaps + (long)i * k, rows, rows + cap};
    }
    for (long c = 0; c < groups; c += CHUNK) {
        long c1 = c + CHUNK < groups ? c + CHUNK : groups;
        for (int i = 0; i < n; i += NQ)
            for (long g = c; g < c1; g += NG)
                score_block(table, g, quads, queries + (long)(q0 + i) * qlen, qlen, s + i,
                            n - i < NQ ? n - i : NQ);
    }
    for (int i = 0; i < n; i++) {
        long at = (long)(q0 + i) * k;
        overflow[q0 + i] = s[i].overflow;
        compact(&s[i]);
        rank_exactly(&s[i], unit, d, fq + (long)(q0 + i) * d, tmp, best + at, best_score + at);
    }
    free(heaps);
    free(kept);
    free(tmp);
    return 0;
}

/* The k best of the first r rows for each of nq queries: `best` [nq, k] rows (-1 where fewer
   than k rows count) and `best_score` [nq, k] their exact cosines with the float32 queries
   `fq` [nq, d] (rows of `unit` [n, d]); overflow[i] = 1 where a query had to keep more than
   `cap` rows (its answer is then not to be used). Threads take QBLOCK queries at a time. */
int cl_scan(const uint8_t *table, long groups, int quads, const int8_t *queries, int nq,
            const int32_t *exclude, int ne, const int32_t *margin, int k, int r, int cap,
            const float *unit, int d, const float *fq, int32_t *best, float *best_score,
            int32_t *overflow, int threads) {
    long used = ((long)r + LANES * NG - 1) / (LANES * NG) * NG;
    if (used > groups) used = groups;
    int blocks = (nq + QBLOCK - 1) / QBLOCK, failed = 0;
#pragma omp parallel for schedule(dynamic) num_threads(threads) reduction(| : failed) if (blocks > 1)
    for (int b = 0; b < blocks; b++) {
        int q1 = (b + 1) * QBLOCK < nq ? (b + 1) * QBLOCK : nq;
        failed |= scan_block(table, quads, used, queries, b * QBLOCK, q1, exclude, ne, margin, k,
                             r, cap, unit, d, fq, best, best_score, overflow);
    }
    return failed ? -2 : 0;
}
