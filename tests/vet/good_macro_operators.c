// expect: none
/* Operators written inside macros are read as what they are: the assignment
 * of a release-and-clear macro, null tests of either polarity, the address
 * taken by a registration macro. */
#include <cctx.h>
int work(cctx_t *c);
void keep(cctx_t **slot);

#define CCTX_CLEAR(c)                                                                              \
    do {                                                                                           \
        cctx_release(c);                                                                           \
        (c) = NULL;                                                                                \
    } while (0)
#define IS_NULL(c) ((c) == NULL)
#define IS_SET(c) ((c) != NULL)
#define MISSING(c) (!(c))
#define REGISTER(c) keep(&(c))

int clear_twice(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (IS_NULL(c))
        return -1;
    work(c);
    CCTX_CLEAR(c);
    CCTX_CLEAR(c); /* harmless: c is NULL */
    return 0;
}

int set_or_fail(cctx_t *parent)
{
    cctx_t *c = cctx_with_timeout(parent, 1000, NULL);
    if (IS_SET(c)) {
        work(c);
        cctx_release(c);
        return 0;
    }
    return -1; /* c is NULL here */
}

int bang(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    if (MISSING(c))
        return -1;
    cctx_release(c);
    return 0;
}

void registered(cctx_t *parent)
{
    cctx_t *c = cctx_with_cancel(parent, NULL);
    REGISTER(c); /* the slot owns it now */
}
