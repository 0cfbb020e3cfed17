/* SENSOR: the input stage of a sensor model (edgemem/graph/sensor.py is the spec, tested bit for bit). D samples of
 * C channels of int16 sensor counts become the model's int8 input for one step: their sum per channel, minus the
 * normalizer's mean (in summed counts), requantized by lsb / (D * std * input_scale). A firmware feeds the sensor's
 * raw readings and never re-derives decimation, normalization or quantization from model.h by hand. */
#include "em_k.h"
#include "em_intops_inline.h"

/* in [D][C] s16 (sample-major: all channels of sample 0, then sample 1, ...), offset/mult [C] s32, shift [C] s8,
 * out [C] s8. |sum| <= D * 32768 <= 2^25: no overflow; v = sat32(sum - offset). */
void em_k_sensor(const int16_t *in, int channels, int decim, const int32_t *offset, const int32_t *mult,
                 const int8_t *shift, int8_t *out) {
    for (int c = 0; c < channels; c++) {
        int32_t sum = 0;
        for (int d = 0; d < decim; d++) sum += in[d * channels + c];
        const int32_t v = em_sat32_i((int64_t)sum - offset[c]);
        const int32_t r = em_requant_i(v, mult[c], shift[c]);
        out[c] = (int8_t)(r > 127 ? 127 : (r < -128 ? -128 : r));
    }
}

em_status_t em_sensor_s16(const int16_t *in, int channels, int decim, const int32_t *offset, const int32_t *mult,
                          const int8_t *shift, int8_t *out) {
    if (!in || !offset || !mult || !shift || !out) return EM_ERR_NULL;
    if (channels < 1 || decim < 1 || (long)channels * decim > (long)EM_MAX_DIM) return EM_ERR_DIMS;
    for (int c = 0; c < channels; c++)
        if (mult[c] < (1 << 30) || shift[c] < 1 || shift[c] > 62) return EM_ERR_PARAM;
    em_k_sensor(in, channels, decim, offset, mult, shift, out);
    return EM_OK;
}

/* y = x * inv_lsb in IEEE single precision, stored through a volatile so that no compiler fuses the multiply into
 * the subtraction below (-ffp-contract=fast would make an FMA on an FPU that has one, and a different count). */
static int16_t counts_of(float x, float inv_lsb) {
    volatile float yv = x * inv_lsb;
    const float y = yv;
    if (y >= 32767.0f) return INT16_MAX;
    if (y <= -32768.0f) return INT16_MIN;
    const int32_t t = (int32_t)y; /* truncation toward zero: exact, |y| < 2^15 */
    const float frac = y - (float)t; /* exact: y and t share the binade's grid */
    return (int16_t)(t + (frac >= 0.5f) - (frac <= -0.5f));
}

em_status_t em_sensor_counts_f32(const float *x, int samples, int channels, const float *inv_lsb, int16_t *counts) {
    if (!x || !inv_lsb || !counts) return EM_ERR_NULL;
    if (samples < 1 || channels < 1) return EM_ERR_DIMS;
    for (int s = 0; s < samples; s++)
        for (int c = 0; c < channels; c++) {
            const float v = x[s * channels + c];
            if (v != v || v - v != 0.0f) return EM_ERR_VALUE; /* NaN (v != v) or infinite (inf - inf is NaN) */
        }
    for (int s = 0; s < samples; s++)
        for (int c = 0; c < channels; c++) counts[s * channels + c] = counts_of(x[s * channels + c], inv_lsb[c]);
    return EM_OK;
}
