// expect: lostrelease@20 lostrelease@26 lostrelease@31 lostrelease@37 lostrelease@42 lostrelease@48
/* The macros of bad_lostrelease_noreturn_macro_other_declaration with
 * twenty parameters, the ones that matter past the sixteenth: a parameter
 * named noreturn is the call's argument, the function's name, and of two
 * prototypes the one whose name the arguments spell counts, here the one
 * that returns (an argument longer than 128 bytes too). Those functions
 * return: a leak past their call. */
#include <cctx.h>
int work(cctx_t *c);
#define DECLARE_HOOK(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17, noreturn, a19, a20) \
    void noreturn(const char *m)
DECLARE_HOOK(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, hook, 0, 0);
#define DECLARE_PAIR(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17, quit, name, a20) \
    _Noreturn void quit(void); void name(const char *m)
DECLARE_PAIR(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, bail, note, 0);
DECLARE_PAIR(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, quit_log_of_a_subsystem_whose_name_is_long_enough_that_the_argument_that_spells_it_is_longer_than_one_hundred_and_twenty_eight_bytes_x, log_of_a_subsystem_whose_name_is_long_enough_that_the_argument_that_spells_it_is_longer_than_one_hundred_and_twenty_eight_bytes_x, 0);

int parameter_named_noreturn(cctx_t *p)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    hook("failed");
    return -1;
}

int named_by_an_argument(cctx_t *p)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    note("failed");
    return -1;
}

int named_by_a_long_argument(cctx_t *p)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    log_of_a_subsystem_whose_name_is_long_enough_that_the_argument_that_spells_it_is_longer_than_one_hundred_and_twenty_eight_bytes_x("failed");
    return -1;
}
