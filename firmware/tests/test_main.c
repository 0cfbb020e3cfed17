/* Unit test runner: prints failures as they happen and a final "N passed, M failed" line. */
#include <stdlib.h>

#include "em_test.h"

static int g_passed, g_failed, g_case_failures;
const char *em_test_fixture_dir = "tests/fixtures/tiny_graph";
static uint32_t g_rng = 0x12345678u;

uint32_t t_rand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 17;
    g_rng ^= g_rng << 5;
    return g_rng;
}
void t_seed(uint32_t s) { g_rng = s ? s : 1u; }
int32_t t_range(int32_t lo, int32_t hi) {
    uint64_t span = (uint64_t)((int64_t)hi - lo) + 1u;
    return (int32_t)((int64_t)lo + (int64_t)(((uint64_t)t_rand() << 32 | t_rand()) % span));
}

void em_test_fail(const char *file, int line, const char *expr, long long a, long long b) {
    g_case_failures++;
    if (g_case_failures <= 10) printf("  FAIL %s:%d: %s (%lld vs %lld)\n", file, line, expr, a, b);
}

void em_test_run(const char *name, void (*fn)(void)) {
    g_case_failures = 0;
    t_seed(0x9E3779B9u);
    fn();
    if (g_case_failures) {
        g_failed++;
        printf("FAIL %s (%d checks failed)\n", name, g_case_failures);
    } else {
        g_passed++;
        printf("ok   %s\n", name);
    }
}

#ifdef EM_TEST_SEMIHOSTING
extern void initialise_monitor_handles(void); /* newlib rdimon: stdio/files over semihosting */
#endif

int main(int argc, char **argv) {
#ifdef EM_TEST_SEMIHOSTING
    initialise_monitor_handles(); /* argc is 0 here: the fixture dir stays the default, relative to QEMU's cwd */
#endif
    if (argc > 1) em_test_fixture_dir = argv[1];
    suite_kernels();
    suite_dot();
    suite_runtime();
    suite_guard();
    suite_graph_kernels();
    suite_graph();
    suite_graph_patch();
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
