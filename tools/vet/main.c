/* SPDX-License-Identifier: MIT */
/*
 * cctx-vet: finds misuse of cctx contexts in C code, the way go vet's
 * lostcancel and the context linters do for Go.
 *
 *   cctx-vet [options] FILE... [-- COMPILER ARGS]
 *
 * Without `--`, each file's flags come from compile_commands.json (-p DIR, or
 * the current directory and its parents). Findings go to stdout as GCC-style
 * warnings or, with --sarif, as one SARIF 2.1.0 log. Exit status: 0 clean,
 * 1 findings, 2 a usage error (-p naming a database that cannot be read is
 * one), a file that could not be parsed, or a compile_commands.json found
 * in the search that could not be read (the files are checked without flags).
 */
#include "cfg_builder.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cctx-vet [options] FILE... [-- COMPILER ARGS]\n"
            "  -p DIR             the build directory that has compile_commands.json\n"
            "                     (default: the current directory or its nearest parent)\n"
            "  --enable=R[,R...]  run these rules too (all: every rule)\n"
            "  --disable=R[,R...] do not run these rules\n"
            "  --sarif            write one SARIF 2.1.0 log to stdout\n"
            "  --list-rules       name every rule, whether it is on by default, what it finds\n"
            "  -h, --help         this text\n"
            "Silence a finding with a comment on its line or alone just above it:\n"
            "  // cctx-vet:ignore=RULE[,RULE...]   (why it is fine)\n"
            "Exit status: 0 no findings, 1 findings, 2 a usage error (a -p DIR whose\n"
            "compile_commands.json cannot be read too), a file that could not be parsed,\n"
            "or a compile_commands.json found that could not be read.\n");
}

static bool set_rules(const char *list, bool on)
{
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        abort();
    bool ok = true;
    for (char *r = strtok_r(copy, ",", &save); r; r = strtok_r(NULL, ",", &save)) {
        if (strcmp(r, "all") == 0) {
            for (int i = 0; i < R_COUNT; i++)
                rule_on[i] = on;
            continue;
        }
        int i = rule_by_name(r);
        if (i < 0) {
            fprintf(stderr, "cctx-vet: unknown rule '%s' (see --list-rules)\n", r);
            ok = false;
        } else {
            rule_on[i] = on;
        }
    }
    free(copy);
    return ok;
}

/* Whether the driver's complaint about the command line was told already:
 * every file of a build has the same flags, and says it once is enough. */
static bool said_before(const char *text)
{
    static char **said;
    static size_t nsaid, capsaid;
    for (size_t i = 0; i < nsaid; i++)
        if (strcmp(said[i], text) == 0)
            return true;
    if (nsaid == capsaid) {
        capsaid = capsaid ? 2 * capsaid : 8;
        said = realloc(said, capsaid * sizeof *said);
        if (!said)
            abort();
    }
    said[nsaid] = strdup(text);
    if (!said[nsaid])
        abort();
    nsaid++;
    return false;
}

/* Prints the errors of a parse on stderr; true if there were any that make
 * the file's tree incomplete. Two kinds do not: a warning made an error
 * (-Werror, or a warning that is an error by default: it has a -W option),
 * and a complaint about the command line (no place in a file), such as an
 * option of GCC's that Clang does not know (-fanalyzer, -fconserve-stack),
 * which the driver leaves out before it parses. But where the file itself
 * was not read (`read` false: a byte order mark of an encoding Clang does not
 * take, UTF-16 or UTF-32, refuses the whole buffer), its errors have no
 * place either, and there is no tree at all. */
static bool diagnostics(CXTranslationUnit tu, const char *file, bool read)
{
    bool errors = false;
    unsigned n = clang_getNumDiagnostics(tu);
    for (unsigned i = 0; i < n; i++) {
        CXDiagnostic d = clang_getDiagnostic(tu, i);
        CXString option = clang_getDiagnosticOption(d, NULL);
        CXFile in;
        clang_getExpansionLocation(clang_getDiagnosticLocation(d), &in, NULL, NULL, NULL);
        bool warning = clang_getCString(option)[0] != 0;
        if (clang_getDiagnosticSeverity(d) >= CXDiagnostic_Error && !warning) {
            if (!read) {
                CXString s = clang_getDiagnosticSpelling(d);
                fprintf(stderr, "cctx-vet: %s: error: %s\n", file, clang_getCString(s));
                clang_disposeString(s);
                errors = true;
            } else if (in) {
                CXString s = clang_formatDiagnostic(d, clang_defaultDiagnosticDisplayOptions());
                fprintf(stderr, "%s\n", clang_getCString(s));
                clang_disposeString(s);
                errors = true;
            } else {
                CXString s = clang_getDiagnosticSpelling(d);
                if (!said_before(clang_getCString(s)))
                    fprintf(stderr, "cctx-vet: %s: %s (left out: the parse goes on without it)\n",
                            file, clang_getCString(s));
                clang_disposeString(s);
            }
        }
        clang_disposeString(option);
        clang_disposeDiagnostic(d);
    }
    return errors;
}

/* The file whose functions are being checked, and whether one was too
 * complex to check (which fails the run). */
struct checking {
    const char *file;
    bool skipped;
};

static enum CXChildVisitResult functions(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    struct checking *in = data;
    if (!in_main_file(c))
        return CXChildVisit_Continue;
    if (clang_getCursorKind(c) == CXCursor_FunctionDecl) {
        check_function(c);
        if (clang_isCursorDefinition(c)) {
            struct cfg g;
            cfg_build(&g, c);
            if (g.too_complex) {
                struct loc at = cursor_loc(c);
                fprintf(stderr,
                        "cctx-vet: %s:%u: %s is too complex to check (statements or "
                        "expressions nested more than %d deep), skipped\n",
                        in->file, at.line, g.fname, VET_MAX_DEPTH);
                in->skipped = true;
            } else {
                check_paths(&g);
            }
            cfg_free(&g);
        }
    }
    return CXChildVisit_Continue;
}

/* What libclang's error code says of a parse that made no tree: it gives no
 * more, and the usual causes are named for the user to look at. */
static const char *parse_error(enum CXErrorCode rc)
{
    switch (rc) {
    case CXError_Crashed:
        return "CXError_Crashed: libclang crashed";
    case CXError_InvalidArguments:
        return "CXError_InvalidArguments";
    case CXError_ASTReadError:
        return "CXError_ASTReadError: no single compilation of it could be made of its "
               "arguments (an option the driver refuses, a second source file, or a file "
               "that is not C)";
    default:
        return "CXError_Failure: its compiler arguments may name an input it cannot read";
    }
}

/* Checks one file; -1 if it could not be parsed, else the number of findings. */
static long check_file(CXIndex index, const char *file, const char *abs, const char *pdir,
                       char **extra,
                       int nextra, bool use_extra, bool sarif)
{
    char **args = extra;
    int nargs = nextra;
    char **owned = NULL;
    if (!use_extra) {
        owned = compdb_args(pdir, abs, &nargs);
        args = owned;
        if (!owned && compdb_dir())
            fprintf(stderr,
                    "cctx-vet: %s: no entry in %s/compile_commands.json; parsing without "
                    "flags (give them after --)\n",
                    file, compdb_dir());
        else if (!owned)
            fprintf(stderr,
                    "cctx-vet: %s: no compile_commands.json read; parsing without flags "
                    "(give -p BUILD_DIR, or flags after --)\n",
                    file);
    }
    CXTranslationUnit tu = NULL;
    /* The preprocessing record lets an operator written inside a macro be
     * read from the macro's definition (operator.c). */
    enum CXErrorCode rc = clang_parseTranslationUnit2(
        index, abs, (const char *const *)args, nargs, NULL, 0,
        CXTranslationUnit_KeepGoing | CXTranslationUnit_DetailedPreprocessingRecord, &tu);
    compdb_free_args(owned, owned ? nargs : 0);
    if (rc != CXError_Success || !tu) {
        fprintf(stderr, "cctx-vet: %s: libclang could not parse it (%s)\n", file, parse_error(rc));
        return -1;
    }
    size_t size;
    bool read = clang_getFileContents(tu, clang_getFile(tu, abs), &size) != NULL;
    bool errors = diagnostics(tu, file, read) || !read;
    report_begin_file(file, abs, clang_getFile(tu, abs));
    struct checking in = {file, false};
    clang_visitChildren(clang_getTranslationUnitCursor(tu), functions, &in);
    check_fields(tu);
    long n = (long)report_end_file(sarif);
    op_forget();
    expansions_forget();
    clang_disposeTranslationUnit(tu);
    return errors || in.skipped ? -1 : n;
}

static int run(int argc, char **argv)
{
    for (int i = 0; i < R_COUNT; i++)
        rule_on[i] = rules[i].on_by_default;
    const char *pdir = NULL;
    bool sarif = false, use_extra = false, bad = false, list_rules = false, help = false;
    char **files = calloc((size_t)argc, sizeof *files);
    int nfiles = 0, nextra = 0;
    char **extra = NULL;
    if (!files)
        abort();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            use_extra = true;
            extra = argv + i + 1;
            nextra = argc - i - 1;
            break;
        } else if (strcmp(a, "-p") == 0 && i + 1 < argc) {
            pdir = argv[++i];
        } else if (strncmp(a, "-p=", 3) == 0) {
            pdir = a + 3;
        } else if (strncmp(a, "--enable=", 9) == 0) {
            bad |= !set_rules(a + 9, true);
        } else if (strncmp(a, "--disable=", 10) == 0) {
            bad |= !set_rules(a + 10, false);
        } else if ((strcmp(a, "--enable") == 0 || strcmp(a, "--disable") == 0) && i + 1 < argc) {
            bad |= !set_rules(argv[i + 1], a[2] == 'e');
            i++;
        } else if (strcmp(a, "--sarif") == 0) {
            sarif = true;
        } else if (strcmp(a, "--list-rules") == 0) {
            list_rules = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            help = true;
        } else if (strcmp(a, "-p") == 0 || strcmp(a, "--enable") == 0 ||
                   strcmp(a, "--disable") == 0) {
            fprintf(stderr, "cctx-vet: option %s needs an argument\n", a); /* the last one */
            bad = true;
        } else if (a[0] == '-') {
            fprintf(stderr, "cctx-vet: unknown option %s\n", a);
            bad = true;
        } else {
            files[nfiles++] = argv[i];
        }
    }
    /* A usage error wins over --list-rules and --help: a script that
     * misspells an option beside them learns of it. */
    if (bad || (nfiles == 0 && !list_rules && !help)) {
        usage(stderr);
        free(files);
        return 2;
    }
    if (list_rules || help) {
        if (help)
            usage(stdout);
        else
            for (int r = 0; r < R_COUNT; r++)
                printf("%-16s %-3s %s\n", rules[r].name, rules[r].on_by_default ? "on" : "off",
                       rules[r].summary);
        free(files);
        return 0;
    }
    /* Every path is made absolute first: a -working-directory from the
     * compile database may change what a relative path means. */
    char (*abs)[PATH_MAX] = calloc((size_t)nfiles, sizeof *abs);
    if (!abs)
        abort();
    for (int i = 0; i < nfiles; i++)
        if (!realpath(files[i], abs[i]))
            abs[i][0] = 0;
    bool failed = false;
    /* A -p given with flags after -- is not used, but a database that
     * cannot be read is still said, and is still a usage error. */
    if ((!use_extra || pdir) && !compdb_open(pdir)) {
        if (pdir) {
            /* The database asked for is not there to give the flags: a
             * run without them would check something else, or nothing
             * (a file whose code is under an #ifdef its flags define). */
            fprintf(stderr, "cctx-vet: -p %s: no file checked\n", pdir);
            compdb_close();
            free(abs);
            free(files);
            return 2;
        }
        failed = true; /* found, but unreadable: checked without flags, and said */
    }
    CXIndex index = clang_createIndex(0, 0);
    long total = 0;
    for (int i = 0; i < nfiles; i++) {
        struct stat st;
        if (!abs[i][0] || stat(abs[i], &st) != 0) {
            fprintf(stderr, "cctx-vet: %s: cannot open\n", files[i]);
            failed = true;
            continue;
        }
        if (!S_ISREG(st.st_mode)) { /* libclang would say no more than "error 1" */
            fprintf(stderr, "cctx-vet: %s: not a regular file%s\n", files[i],
                    S_ISDIR(st.st_mode) ? " (a directory)" : "");
            failed = true;
            continue;
        }
        long n = check_file(index, files[i], abs[i], pdir, extra, nextra, use_extra, sarif);
        if (n < 0)
            failed = true;
        else
            total += n;
    }
    if (sarif)
        report_sarif();
    clang_disposeIndex(index);
    compdb_close();
    report_free();
    free(abs);
    free(files);
    return failed ? 2 : total > 0 ? 1 : 0;
}

struct command_line {
    int argc;
    char **argv;
    int status;
};

static void *run_on_thread(void *arg)
{
    struct command_line *cl = arg;
    cl->status = run(cl->argc, cl->argv);
    return NULL;
}

/* The checker recurses as deep as a function's code nests (VET_MAX_DEPTH):
 * it runs on a thread whose stack holds that, reserved and touched only as
 * deep as it goes. Where no such thread can be made, on this one. */
int main(int argc, char **argv)
{
    struct command_line cl = {argc, argv, 2};
    /* libclang parses on a thread of its own, of an 8 MB stack, unless told
     * not to: a long expression (that clang accepts with a larger stack)
     * overflowed it. Parsed on this thread's, it fits as the lowering does. */
    setenv("LIBCLANG_NOTHREADS", "1", 0);
    pthread_attr_t attr;
    pthread_t t;
    if (pthread_attr_init(&attr) == 0) {
        bool started = pthread_attr_setstacksize(&attr, VET_STACK_BYTES) == 0 &&
                       pthread_create(&t, &attr, run_on_thread, &cl) == 0;
        pthread_attr_destroy(&attr);
        if (started && pthread_join(t, NULL) == 0)
            return cl.status;
    }
    return run(argc, argv);
}
