/* Fixed-point log-mel front end, one hop of int16 PCM -> int8 features per mel band: the integer spec of
 * edgemem/graph/logmel.py (its docstring is the definition: table layout, every rounding and bound), bit for bit.
 *
 * Stages: frame (history ++ pcm) x Q15 window -> block normalization to 16 bits (g = 15 - bitlen(max |p|)) ->
 * em_rfft_s32 (M = n_fft/2-point complex radix-2 DIT FFT of the packed real frame in int32 with Q30 twiddles, no
 * scaling, then the split to 2X[k], k = 0..M) -> power rshift_round(|2X|^2, 6) (int64) -> Q15 triangular filters
 * summed in int64 -> + eps at a common scale -> log2 (bit length + a 65-entry Q26 table, linear interpolation) ->
 * per-band requant to int8.
 *
 * The FFT: CMSIS-DSP's arm_rfft_q15 / arm_rfft_q31 would be the natural device FFT, but edgemem's runtime takes no
 * dependency on it. A firmware that links CMSIS-DSP can swap it in at em_rfft_s32 below, whose interface is:
 *   in:  z [n_fft + 2] int32, z[0 .. n_fft-1] the normalized real frame (|v| <= 2^15, zero-padded);
 *   out: z[2k], z[2k+1] = Re, Im of 2 X[k] (twice the DFT of v), k = 0 .. n_fft/2, |2X| <= 2^26.
 * (arm_rfft_q31 scales its output down by n_fft and rounds differently: the caller would have to shift back and the
 * result would NOT be bit-exact with the spec, so the Python reference and the verification would no longer
 * match; the log-mel values would still agree to about the int8 step.) */
#include <stdint.h>

#include "em_k.h"
#include "em_intops_inline.h"

#define EM_LOGMEL_UNIT 71 /* mel = S * 2^(-71 - 2g) */

/* bit length of x (0 for 0) */
static int em_bitlen64(uint64_t x) {
#if defined(__GNUC__)
    return x ? 64 - __builtin_clzll(x) : 0;
#else
    int n = 0;
    while (x) { n++; x >>= 1; }
    return n;
#endif
}

/* (x * (c - j s)) in Q30: t.re = rshift_round(re c + im s, 30), t.im = rshift_round(im c - re s, 30);
 * |re|, |im| <= 2^25.5 here, so every sum is below 2^56 (the bounded rounding shift applies). */
static inline void em_cmul_q30(int32_t re, int32_t im, int32_t c, int32_t s, int32_t *tr, int32_t *ti) {
    *tr = (int32_t)em_rshift_round_bounded_i((int64_t)re * c + (int64_t)im * s, 30);
    *ti = (int32_t)em_rshift_round_bounded_i((int64_t)im * c - (int64_t)re * s, 30);
}

/* sin(2 pi k / n_fft) = cos(2 pi |n_fft/4 - k| / n_fft) for k in [0, n_fft/2] */
static inline int32_t em_sinq(const int32_t *cosq, int m, int k) { return cosq[k <= m / 2 ? m / 2 - k : k - m / 2]; }

/* The real FFT (interface in the header comment): cosq [n_fft/2 + 1] Q30. */
static void em_rfft_s32(int32_t *z, int n_fft, const int32_t *cosq) {
    const int m = n_fft / 2;
    /* bit-reversed order of the m complex values z[n] = v[2n] + j v[2n+1] */
    for (int i = 0, j = 0; i < m; i++) {
        if (i < j) {
            int32_t t0 = z[2 * i], t1 = z[2 * i + 1];
            z[2 * i] = z[2 * j];
            z[2 * i + 1] = z[2 * j + 1];
            z[2 * j] = t0;
            z[2 * j + 1] = t1;
        }
        int bit = m >> 1;
        while (bit && (j & bit)) {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
    }
    for (int len = 2; len <= m; len <<= 1) {
        const int half = len >> 1, step = n_fft / len;
        for (int a = 0; a < m; a += len) { /* j = 0: the twiddle is exactly 1 (2^30, 0), t = b exactly */
            const int b = a + half;
            const int32_t ar = z[2 * a], ai = z[2 * a + 1], br = z[2 * b], bi = z[2 * b + 1];
            z[2 * a] = ar + br;
            z[2 * a + 1] = ai + bi;
            z[2 * b] = ar - br;
            z[2 * b + 1] = ai - bi;
        }
        for (int j = 1; j < half; j++) {
            const int32_t c = cosq[j * step], s = em_sinq(cosq, m, j * step);
            for (int a = j; a < m; a += len) {
                const int b = a + half;
                int32_t tr, ti;
                em_cmul_q30(z[2 * b], z[2 * b + 1], c, s, &tr, &ti);
                const int32_t ar = z[2 * a], ai = z[2 * a + 1];
                z[2 * a] = ar + tr;
                z[2 * a + 1] = ai + ti;
                z[2 * b] = ar - tr;
                z[2 * b + 1] = ai - ti;
            }
        }
    }
    /* split: A = Z[k], B = conj Z[M-k], 2X[k] = (A + B) + W^k (-j (A - B)); pairs (k, M-k) in place */
    z[2 * m] = z[0];
    z[2 * m + 1] = z[1];
    for (int k = 0; k <= m / 2; k++) {
        const int k2 = m - k;
        const int32_t zr = z[2 * k], zi = z[2 * k + 1], wr = z[2 * k2], wi = z[2 * k2 + 1];
        for (int side = 0; side < 2; side++) {
            const int kk = side ? k2 : k;
            if (side && k2 == k) break;
            /* A = (ar, ai), B = (br, bi) */
            const int32_t ar = side ? wr : zr, ai = side ? wi : zi, br = side ? zr : wr, bi = side ? -zi : -wi;
            int32_t tr, ti;
            em_cmul_q30(ai - bi, -(ar - br), cosq[kk], em_sinq(cosq, m, kk), &tr, &ti);
            z[2 * kk] = ar + br + tr;
            z[2 * kk + 1] = ai + bi + ti;
        }
    }
}

void em_k_logmel(const int16_t *pcm, int16_t *history, int8_t *out, int win, int hop, int n_fft, int n_mels,
                 const int16_t *window, const int32_t *t1, const int16_t *filterbank, const int32_t *band_quant,
                 int32_t *scratch) {
    const int hist = win - hop, m = n_fft / 2;
    int32_t *z = scratch; /* [n_fft + 2] */
    /* window (exact: |p| < 2^30) and the block maximum */
    int32_t mx = 0;
    for (int i = 0; i < win; i++) {
        const int32_t p = (int32_t)(i < hist ? history[i] : pcm[i - hist]) * window[i];
        z[i] = p;
        const int32_t a = p < 0 ? -p : p;
        if (a > mx) mx = a;
    }
    for (int i = win; i < n_fft; i++) z[i] = 0;
    for (int j = 0; j < hist; j++) { /* the new history: frame[hop:], copied forwards (source after destination) */
        const int s = j + hop;
        history[j] = s < hist ? history[s] : pcm[s - hist];
    }
    const int g = 15 - em_bitlen64((uint64_t)mx);
    if (g > 0) {
        for (int i = 0; i < win; i++) z[i] *= (int32_t)1 << g; /* |z << g| <= 2^15 */
    } else if (g < 0) {
        for (int i = 0; i < win; i++) z[i] = em_rshift_round32_i(z[i], -g);
    }
    em_rfft_s32(z, n_fft, t1);
    /* power P[k] = rshift_round(re^2 + im^2, 6) <= 2^46, stored over slot k as two uint32 (low first) */
    uint32_t *pw = (uint32_t *)scratch;
    for (int k = 0; k <= m; k++) {
        const int64_t re = z[2 * k], im = z[2 * k + 1];
        const uint64_t p = (uint64_t)em_rshift_round_bounded_i(re * re + im * im, 6);
        pw[2 * k] = (uint32_t)p;
        pw[2 * k + 1] = (uint32_t)(p >> 32);
    }
    const int32_t *logt = t1 + m + 1;
    const int32_t zp = band_quant[3 * n_mels];
    const int64_t eps = (int64_t)((uint64_t)(uint32_t)band_quant[3 * n_mels + 1] |
                                  (uint64_t)(uint32_t)band_quant[3 * n_mels + 2] << 32);
    const int16_t *fb = filterbank;
    for (int b = 0; b < n_mels; b++) {
        const int lo = fb[0], cnt = fb[1];
        const int16_t *q = fb + 2;
        int64_t s = 0; /* < 2^61 (Parseval) */
        for (int i = 0; i < cnt; i++) {
            const int k = lo + i;
            const uint64_t p = (uint64_t)pw[2 * k] | (uint64_t)pw[2 * k + 1] << 32;
            s += (int64_t)p * q[i];
        }
        fb += 2 + cnt;
        /* + eps at a common scale: units 2^-71 (g >= 0) or 2^(-71 - 2g) (g < 0); T in [1, 2^62) */
        int64_t t;
        if (g > 0) t = em_rshift_round_bounded_i(s, 2 * g) + eps;
        else if (g == 0) t = s + eps;
        else t = s + em_rshift_round_bounded_i(eps, -2 * g);
        const int e = em_bitlen64((uint64_t)t) - 1;
        const uint32_t r = e >= 30 ? (uint32_t)((uint64_t)t >> (e - 30)) : (uint32_t)((uint64_t)t << (30 - e));
        const uint32_t x = r - ((uint32_t)1 << 30);
        const int i = (int)(x >> 24);
        const int32_t u = (int32_t)(x & 0xFFFFFFu);
        const int32_t lf =
            logt[i] + (int32_t)em_rshift_round_bounded_i((int64_t)(logt[i + 1] - logt[i]) * u, 24); /* Q26 */
        const int32_t y = (e - EM_LOGMEL_UNIT - 2 * (g < 0 ? g : 0)) * ((int32_t)1 << 20) +
                          em_rshift_round32_i(lf, 6); /* log2(mel + eps) in Q20 */
        int32_t o = em_requant_i((int64_t)y - band_quant[3 * b], band_quant[3 * b + 1], band_quant[3 * b + 2]);
        o = o > 256 ? 256 : o < -256 ? -256 : o;
        o += zp;
        out[b] = (int8_t)(o > 127 ? 127 : o < -128 ? -128 : o);
    }
}

size_t em_logmel_buffer_size(int win, int hop, int n_fft, int n_mels) {
    if (n_fft < 64 || n_fft > 1024 || (n_fft & (n_fft - 1)) || win < 1 || win > n_fft || hop < 1 || hop > win ||
        n_mels < 1 || n_mels > 256)
        return 0;
    return (size_t)(n_fft + 2) * sizeof(int32_t);
}

em_status_t em_logmel_s16(const int16_t *pcm, int16_t *history, int8_t *out, int win, int hop, int n_fft,
                          int n_mels, const int16_t *window, const int32_t *t1, const int16_t *filterbank,
                          const int32_t *band_quant, void *scratch) {
    if (!pcm || (!history && win > hop) || !out || !window || !t1 || !filterbank || !band_quant || !scratch)
        return EM_ERR_NULL;
    if (em_logmel_buffer_size(win, hop, n_fft, n_mels) == 0) return EM_ERR_DIMS;
    if ((uintptr_t)scratch & 3u) return EM_ERR_ALIGN;
    const int m = n_fft / 2;
    /* the twiddle-free butterflies (j = 0) assume cos 0 = 1 and sin 0 = 0 exactly, as the spec's table has them */
    if (t1[0] != (1 << 30) || t1[m / 2] != 0) return EM_ERR_PARAM;
    const int16_t *fb = filterbank;
    for (int b = 0; b < n_mels; b++) { /* every band inside bins 0 .. m, weights in [0, 32767] */
        const int lo = fb[0], cnt = fb[1];
        if (lo < 0 || cnt < 0 || lo + cnt > m + 1) return EM_ERR_PARAM;
        for (int i = 0; i < cnt; i++)
            if (fb[2 + i] < 0) return EM_ERR_PARAM;
        fb += 2 + cnt;
    }
    for (int b = 0; b < n_mels; b++)
        if (band_quant[3 * b + 2] < 1 || band_quant[3 * b + 2] > 62 || band_quant[3 * b + 1] < 0 ||
            band_quant[3 * b] > (1 << 27) || band_quant[3 * b] < -(1 << 27))
            return EM_ERR_PARAM;
    const int32_t zp = band_quant[3 * n_mels];
    if (zp < -128 || zp > 127 || band_quant[3 * n_mels + 2] < 1 || band_quant[3 * n_mels + 2] >= (1 << 24))
        return EM_ERR_PARAM; /* eps in [2^32, 2^56) */
    for (int k = 0; k <= m; k++) { /* rotations no longer than one, and the log2 table in range: as the blob parser */
        const int64_t c = t1[k], sn = t1[k <= m / 2 ? m / 2 - k : k - m / 2];
        if (c > (1 << 30) || c < -(1 << 30) || sn > (1 << 30) || sn < -(1 << 30) ||
            (uint64_t)(c * c) + (uint64_t)(sn * sn) > ((uint64_t)1 << 60) + ((uint64_t)1 << 32))
            return EM_ERR_PARAM;
    }
    for (int i = 0; i <= 64; i++)
        if (t1[m + 1 + i] < 0 || t1[m + 1 + i] > (1 << 26) || (i > 0 && t1[m + 1 + i] < t1[m + i])) return EM_ERR_PARAM;
    em_k_logmel(pcm, history, out, win, hop, n_fft, n_mels, window, t1, filterbank, band_quant, (int32_t *)scratch);
    return EM_OK;
}
