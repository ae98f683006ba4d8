// The test helpers the fuzzers reuse (tests/unit/devices/harness.h,
// tests/unit/virtiofs/fuse_client.h) check their own preconditions with
// doctest's REQUIRE. Outside a doctest run those need a context with an
// assert handler; this one prints the failed check and aborts, which
// libFuzzer records as a crash with a reproducer.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>

namespace {

void on_failed_check(const doctest::AssertData& ad) {
    std::fprintf(stderr, "\n==FUZZ HELPER CHECK FAILED== %s:%d: %s\n", ad.m_file, ad.m_line, ad.m_expr);
    if (ad.m_decomp.size() > 0) std::fprintf(stderr, "  values: %s\n", ad.m_decomp.c_str());
    std::fflush(stderr);
    std::abort();
}

struct Bridge {
    doctest::Context ctx;
    Bridge() {
        ctx.setAsDefaultForAssertsOutOfTestCases();
        ctx.setAssertHandler(on_failed_check);
    }
};

// Constructed before LLVMFuzzerTestOneInput can run; lives for the process.
Bridge bridge;

}  // namespace
