// expect: none
/* `continue` from inside a switch leaves the loop body: CCTX_AUTO's cleanup runs. */
#include <cctx.h>
void work(cctx_t *c);

void auto_continue_in_switch(cctx_t *parent, int n)
{
    for (int i = 0; i < n; i++) {
        CCTX_AUTO cctx_t *c = cctx_with_cancel(parent, NULL);
        switch (i % 3) {
        case 0:
            continue; /* c released by its cleanup here */
        default:
            break;
        }
        work(c);
    }
}
