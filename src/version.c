/* SPDX-License-Identifier: MIT */
/*
 * cctx_version: the version compiled into the library, for a program that
 * wants to know which shared library it got (the header's macros say which
 * one it was compiled against).
 */
#include <cctx.h>

CCTX_API const char *cctx_version(void)
{
    return CCTX_VERSION_STRING;
}
