// expect: none
/* The macros of good_noreturn_macro and
 * bad_lostrelease_noreturn_macro_other_declaration with twenty parameters,
 * the ones that matter past the sixteenth: of two prototypes, the one whose
 * name the arguments spell, pasted, counts, here the one that never returns,
 * the second. A call to it ends the path: nothing is owed after it. */
#include <cctx.h>
int work(cctx_t *c);
#define DECLARE_LOGGER(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17, name, a19, a20) \
    void name(const char *m); _Noreturn void name##_fatal(const char *m)
DECLARE_LOGGER(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, logmsg, 0, 0);
DECLARE_LOGGER(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, log_of_a_subsystem_whose_name_is_long_enough_that_the_argument_that_spells_it_is_longer_than_one_hundred_and_twenty_eight_bytes_x, 0, 0);

int fatal_second(cctx_t *p)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    logmsg_fatal("failed");
    return -1;
}

int fatal_second_long(cctx_t *p)
{
    cctx_t *c = cctx_with_cancel(p, NULL);
    if (work(c) == 0) {
        cctx_release(c);
        return 0;
    }
    log_of_a_subsystem_whose_name_is_long_enough_that_the_argument_that_spells_it_is_longer_than_one_hundred_and_twenty_eight_bytes_x_fatal("failed");
    return -1;
}
