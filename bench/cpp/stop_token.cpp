// SPDX-License-Identifier: MIT
/*
 * cctx-bench-stop-token: the C++20 twins of Go 1.19's
 * src/context/benchmark_test.go that std::stop_source, std::stop_token and
 * std::stop_callback can express, under the same names as cctx-bench's and
 * Go's, printed in Go's benchmark format by the same harness (harness.c,
 * compiled as C), so bench/run-go.sh --compare can put them in one table.
 *
 * The model. A cancelable context is a std::stop_source; what is handed down
 * to children is its std::stop_token; Go's cancel() is request_stop(). A child
 * (Go's WithCancel(parent)) is a new stop_source plus a std::stop_callback
 * registered on the parent's token that stops the child: a parent's stop
 * reaches every descendant, a child's stop leaves its parent alone, and a
 * child of an already stopped parent is stopped as it is made (the callback
 * runs in its constructor), as Go's propagateCancel does.
 *
 * Go's Background is a default-constructed std::stop_token: it has no stop
 * state, stop_possible() is false, and a stop_callback on it registers
 * nothing, just as WithCancel(Background()) registers nothing because
 * Background's Done() is nil. (A never-stopped stop_source would instead make
 * every child register a callback that never runs, which Go does not do.)
 *
 * What is left out: std::stop_token carries no values and no deadlines, so
 * WithTimeout and the DeepValue benchmarks have no twin here, and
 * CommonParentCancel runs without its Value lookup (a note under its line
 * says so).
 *
 * As in cctx-bench, a context is freed inside the timed loop where Go leaves
 * it to its garbage collector: in C++ that cost is the program's, so it is
 * counted.
 *
 * The process is made multi-threaded before the first benchmark (a parked
 * thread, see main). libstdc++ skips, while the process has never had a
 * second thread, the semaphore release that lets a stop_callback's destructor
 * on another thread wait for a running callback; once any thread has existed
 * that release is a futex wake, a system call for every callback a stop runs.
 * Without the parked thread, Root=OpenCanceler would cost a tenth as much when
 * run alone (as run-go.sh --compare runs each benchmark) as after
 * CommonParentCancel's threads in a full run. Stopping across threads is what
 * std::stop_token is for, and a Go program always has several threads, so
 * the figures are taken in the multi-threaded state.
 */
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <stop_token>

#include <pthread.h>
#include <unistd.h>

#include "harness.h"

static_assert(sizeof(bench_atomic_u64) == sizeof(uint64_t) &&
                  alignof(bench_atomic_u64) == alignof(uint64_t),
              "harness.c shares an _Atomic uint64_t with bench_pb_next");

/* ---- Allocation counting -------------------------------------------------- */

/*
 * B/op and allocs/op count what C++ allocates the same way cctx-bench counts
 * what cctx allocates: alloc.c, linked into this program too, defines malloc
 * and counts every block (with its malloc_usable_size) in per-thread
 * counters, and the harness reads them around the run that counts (the
 * timed runs do not: harness.h, bench_run). The global
 * operator new and delete are replaced so that every C++ allocation provably
 * takes that path: libstdc++'s own operator new calls malloc too, but the
 * standard does not promise it. (new[], nothrow and sized forms reach these by
 * their default definitions; aligned new reaches alloc.c's aligned_alloc.)
 */
void *operator new(std::size_t size)
{
    void *p = std::malloc(size ? size : 1);
    if (!p)
        throw std::bad_alloc();
    return p;
}

void operator delete(void *p) noexcept
{
    std::free(p);
}

void operator delete(void *p, std::size_t) noexcept
{
    std::free(p);
}

namespace {

/* ---- Contexts --------------------------------------------------------------- */

// The callback a child registers on its parent's token.
struct StopChild {
    std::stop_source *child;
    void operator()() const noexcept { child->request_stop(); }
};

// Go's WithCancel(parent): one heap object per context, as Go's cancelCtx and
// cctx's context are (a context outlives the call that makes it); the
// stop_source's shared state is a second allocation, which std::stop_source
// cannot avoid. Members are destroyed in reverse order: the callback leaves
// the parent's list before the source goes.
struct Child {
    Child *up; // the context made before it in a chain, freed after it
    std::stop_source source;
    std::stop_callback<StopChild> on_parent_stop;

    Child(const std::stop_token &parent, Child *up_)
        : up(up_), on_parent_stop(parent, StopChild{&source})
    {
    }
};

// Go's buildContextTree: a chain of depth children under root. Go drops each
// CancelFunc and the chain stays reachable from its leaf (and from an open
// root's children); here the leaf is returned, and freeing it frees the chain.
Child *build_context_tree(const std::stop_token &root, int depth)
{
    Child *leaf = depth > 0 ? new Child(root, nullptr) : nullptr;
    for (int d = 1; d < depth; d++)
        leaf = new Child(leaf->source.get_token(), leaf);
    return leaf;
}

// Leaf first: each child's callback leaves its parent's list while the parent
// still exists. A loop, not a recursion, for depth=1000.
void free_tree(Child *leaf)
{
    while (leaf) {
        Child *up = leaf->up;
        delete leaf;
        leaf = up;
    }
}

int depth_of(void *arg)
{
    return static_cast<int>(reinterpret_cast<intptr_t>(arg));
}

/* ---- BenchmarkCancelTree/depth=D/Root=R ----------------------------------- */

void cancel_tree_background(bench_b *b, void *arg)
{
    int depth = depth_of(arg);
    const std::stop_token background;
    for (int64_t i = 0; i < b->n; i++)
        free_tree(build_context_tree(background, depth));
}

void cancel_tree_open(bench_b *b, void *arg)
{
    int depth = depth_of(arg);
    for (int64_t i = 0; i < b->n; i++) {
        std::stop_source root; // WithCancel(Background()): no callback to register
        Child *leaf = build_context_tree(root.get_token(), depth);
        root.request_stop(); // reaches the whole chain, as Go's cancel()
        free_tree(leaf);
    }
}

void cancel_tree_closed(bench_b *b, void *arg)
{
    int depth = depth_of(arg);
    for (int64_t i = 0; i < b->n; i++) {
        std::stop_source root;
        root.request_stop();
        free_tree(build_context_tree(root.get_token(), depth)); // each child born stopped
    }
}

/* ---- BenchmarkCheckCanceled/Err, /Done ------------------------------------ */

// Go's ctx.Err() on a canceled context: "has it ended?", which a token
// answers with stop_requested() (one atomic load).
void check_canceled_err(bench_b *b, void *arg)
{
    const std::stop_token &token = *static_cast<const std::stop_token *>(arg);
    for (int64_t i = 0; i < b->n; i++) {
        bool stopped = token.stop_requested();
        BENCH_KEEP(stopped);
    }
}

// Go's `select { case <-ctx.Done(): default: }`: a poll that never blocks, a
// lock-free load of the channel's closed flag. A token has no channel; its one
// non-blocking question is stop_requested(), so /Done runs the same call as
// /Err. (Its one wait, condition_variable_any::wait with a token, needs a
// caller's mutex and copies the token, a reference count bounced between
// threads: not a poll, and not what C++ written from this Go would call.)
void check_canceled_done(bench_b *b, void *arg)
{
    check_canceled_err(b, arg);
}

/* ---- BenchmarkContextCancelDone ------------------------------------------- */

void cancel_done_body(bench_pb *pb, void *arg)
{
    const std::stop_token &token = *static_cast<const std::stop_token *>(arg);
    while (bench_pb_next(pb)) {
        bool stopped = token.stop_requested();
        BENCH_KEEP(stopped);
    }
}

void context_cancel_done(bench_b *b, void *)
{
    // Go times this whole function, set-up and deferred cancel() included.
    std::stop_source source;
    std::stop_token token = source.get_token();
    bench_run_parallel(b, cancel_done_body, &token);
    source.request_stop();
}

/* ---- BenchmarkCommonParentCancel ------------------------------------------ */

void common_parent_body(bench_pb *pb, void *arg)
{
    const std::stop_token &shared = *static_cast<const std::stop_token *>(arg);
    // Go's x is an int in a register; the empty asm makes each division opaque
    // so none can be folded or hoisted, without adding a memory access.
    int64_t x = 0;
    while (bench_pb_next(pb)) {
        Child *ctx = new Child(shared, nullptr);
        // Go checks ctx.Value("key") here: a token has no values.
        for (int i = 0; i < 100; i++) {
            __asm__ volatile("" : "+r"(x));
            x /= x + 1;
        }
        ctx->source.request_stop();
        for (int i = 0; i < 100; i++) {
            __asm__ volatile("" : "+r"(x));
            x /= x + 1;
        }
        delete ctx; // leaves the shared parent's list, as Go's cancel() does
    }
    BENCH_KEEP(x);
}

void common_parent_cancel(bench_b *b, void *)
{
    // Go's root is WithValue(Background(), "key", "value"): no value here, so
    // the shared parent derives from Background directly.
    std::stop_source shared;
    std::stop_token token = shared.get_token();
    bench_reset_timer(b);
    bench_run_parallel(b, common_parent_body, &token);
    shared.request_stop(); // Go's deferred sharedcancel() is timed too
    bench_note(b, "no Value lookup: std::stop_token carries no values");
}

void *parked(void *)
{
    for (;;)
        pause();
}

} // namespace

/* ---- Registration, in Go's order ------------------------------------------ */

int main(int argc, char **argv)
{
    bench_init(argc, argv,
               "cctx-bench-stop-token: C++20 std::stop_token twins of Go 1.19 "
               "src/context/benchmark_test.go");
    // Multi-threaded for every row alike (see the top of this file). The
    // thread stays parked, so no C library that might one day count threads
    // again can return to its single-threaded shortcuts.
    pthread_t t;
    if (pthread_create(&t, nullptr, parked, nullptr) != 0)
        bench_fatal("pthread_create failed");
    pthread_detach(t);
    bench_run("BenchmarkCommonParentCancel", common_parent_cancel, nullptr);

    static const int depths[] = {1, 10, 100, 1000};
    static const struct {
        const char *root;
        bench_fn fn;
    } roots[] = {
        {"Background", cancel_tree_background},
        {"OpenCanceler", cancel_tree_open},
        {"ClosedCanceler", cancel_tree_closed},
    };
    for (int depth : depths)
        for (const auto &r : roots) {
            char name[128];
            std::snprintf(name, sizeof name, "BenchmarkCancelTree/depth=%d/Root=%s", depth,
                          r.root);
            bench_run(name, r.fn, reinterpret_cast<void *>(static_cast<intptr_t>(depth)));
        }

    if (bench_wanted("BenchmarkCheckCanceled")) {
        std::stop_source source;
        source.request_stop();
        std::stop_token token = source.get_token();
        bench_run("BenchmarkCheckCanceled/Err", check_canceled_err, &token);
        bench_run("BenchmarkCheckCanceled/Done", check_canceled_done, &token);
    }

    bench_run("BenchmarkContextCancelDone", context_cancel_done, nullptr);
    std::printf("PASS\n");
    return 0;
}
