/* SPDX-License-Identifier: MIT */
/*
 * Test hook of src/resolve.c (not installed; hidden like the rest of the
 * library's internals): how many helper threads of cctx_getaddrinfo have not
 * finished yet, abandoned ones included. A test waits for it to reach 0 to
 * know that an abandoned lookup has freed what it held. And the bound on
 * them.
 */
#ifndef CCTX_RESOLVE_INTERNAL_H
#define CCTX_RESOLVE_INTERNAL_H

int cctx__resolve_in_flight(void);
/* At most this many helper threads at once (256); a test lowers it. */
extern _Atomic int cctx__resolve_helpers_max;

#endif
