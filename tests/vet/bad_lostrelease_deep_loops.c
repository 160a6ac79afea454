// expect: lostrelease@16 lostrelease@19
/* Loops nested deeper than any fixed limit (320 here; generated code does
 * this) are lowered like any others: the leak after them is found. */
#include <cctx.h>
void work(cctx_t *c);

#define LOOP while (i++ < n)
#define LOOP4 LOOP LOOP LOOP LOOP
#define LOOP16 LOOP4 LOOP4 LOOP4 LOOP4
#define LOOP64 LOOP16 LOOP16 LOOP16 LOOP16
#define LOOP256 LOOP64 LOOP64 LOOP64 LOOP64

void deep(cctx_t *parent, int n)
{
    int i = 0;
    cctx_t *c = cctx_with_cancel(parent, NULL);
    LOOP256 LOOP64 work(c);
    /* c is never released */
}
