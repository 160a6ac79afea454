/* SPDX-License-Identifier: MIT */
/*
 * Compiler arguments from compile_commands.json, through libclang's
 * compilation database: the directory given with -p, or else the current
 * directory or the nearest parent that has the file. The compiler's name,
 * the source file, -c and -o are dropped (libclang takes the source apart),
 * and so are the other sources of a command that compiles several (of two,
 * libclang parses neither) and the options that write a dependency file
 * (-MD, -MMD, -MF and the rest): libclang would write the build's own .d
 * file, and fail the run where its directory does not exist yet. The entry's directory
 * becomes -working-directory so relative -I work.
 */
#include "vet.h"

#include <clang-c/CXCompilationDatabase.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static CXCompilationDatabase db;
static bool tried;

static bool has_db(const char *dir)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/compile_commands.json", dir);
    return access(path, R_OK) == 0;
}

static void open_db(const char *dir)
{
    tried = true;
    char found[PATH_MAX];
    if (dir) {
        snprintf(found, sizeof found, "%s", dir);
    } else {
        if (!getcwd(found, sizeof found))
            return;
        while (!has_db(found)) {
            char *slash = strrchr(found, '/');
            if (!slash || slash == found)
                return;
            *slash = 0;
        }
    }
    CXCompilationDatabase_Error err;
    db = clang_CompilationDatabase_fromDirectory(found, &err);
    if (err != CXCompilationDatabase_NoError) {
        if (db)
            clang_CompilationDatabase_dispose(db);
        db = NULL;
        fprintf(stderr, "cctx-vet: cannot read %s/compile_commands.json\n", found);
    }
}

static char *copy_str(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

/* Whether the argument names the file being parsed, relative to the
 * entry's directory or not (Bear writes "file" absolute, the argument as the
 * build typed it). */
static bool names_file(const char *wd, const char *arg, const char *path)
{
    char joined[2 * PATH_MAX + 2], real[PATH_MAX];
    if (arg[0] == '-')
        return false;
    if (arg[0] == '/')
        snprintf(joined, sizeof joined, "%s", arg);
    else
        snprintf(joined, sizeof joined, "%s/%s", wd, arg);
    return realpath(joined, real) && strcmp(real, path) == 0;
}

/* How many arguments, from this one on, are dependency-file options: 2 for
 * an option whose value is the next argument, 1 for one alone or with its
 * value joined (-MFdeps/a.d, -Wp,-MD,a.d), 0 for anything else. */
static unsigned dependency_option(const char *s)
{
    static const char *const alone[] = {"-M",
                                        "-MM",
                                        "-MD",
                                        "-MMD",
                                        "-MG",
                                        "-MP",
                                        "--write-dependencies",
                                        "--write-user-dependencies"};
    for (size_t i = 0; i < sizeof alone / sizeof *alone; i++)
        if (strcmp(s, alone[i]) == 0)
            return 1;
    /* -MJ is Clang's: a compile database fragment, written as the build runs. */
    if (strncmp(s, "-MF", 3) == 0 || strncmp(s, "-MT", 3) == 0 || strncmp(s, "-MQ", 3) == 0 ||
        strncmp(s, "-MJ", 3) == 0)
        return s[3] ? 1 : 2;
    if (strncmp(s, "-Wp,-M", 6) == 0)
        return 1;
    return 0;
}

/* Another source file of a command that compiles several at once (`cc -o
 * prog main.c util.c`, as a compile-and-link build writes it): with two
 * sources libclang's driver makes two compilations, and parses neither. */
static bool is_other_source(const char *s)
{
    static const char *const suffixes[] = {".c", ".i", ".cc", ".cp", ".cpp", ".cxx", ".c++",
                                           ".C", ".m", ".mm", ".s",  ".S",   NULL};
    const char *dot = strrchr(s, '.');
    if (s[0] == '-' || !dot || strchr(dot, '/'))
        return false;
    for (int i = 0; suffixes[i]; i++)
        if (strcmp(dot, suffixes[i]) == 0)
            return true;
    return false;
}

/* The options whose value, the next argument, may be a file with a
 * source's name (`-include config.c`): that argument is no source. */
static bool takes_value(const char *option)
{
    static const char *const with_value[] = {
        "-include",   "-imacros", "-Xclang", "-Xpreprocessor", "-Xlinker",  "-Xassembler",
        "-Xanalyzer", "-x",       "-T",      "-aux-info",      "-dumpbase", "-main-file-name",
        NULL};
    for (int i = 0; with_value[i]; i++)
        if (strcmp(option, with_value[i]) == 0)
            return true;
    return false;
}

char **compdb_args(const char *dir, const char *path, int *n)
{
    *n = 0;
    if (!tried)
        open_db(dir);
    if (!db)
        return NULL;
    CXCompileCommands cmds = clang_CompilationDatabase_getCompileCommands(db, path);
    if (!cmds)
        return NULL;
    if (clang_CompileCommands_getSize(cmds) == 0) {
        clang_CompileCommands_dispose(cmds);
        return NULL;
    }
    CXCompileCommand cmd = clang_CompileCommands_getCommand(cmds, 0);
    unsigned na = clang_CompileCommand_getNumArgs(cmd);
    char **args = calloc(na + 3, sizeof *args);
    if (!args)
        abort();
    CXString file = clang_CompileCommand_getFilename(cmd);
    CXString wd = clang_CompileCommand_getDirectory(cmd);
    args[(*n)++] = copy_str("-working-directory");
    args[(*n)++] = copy_str(clang_getCString(wd));
    char *prev = copy_str("");
    for (unsigned i = 1; i < na; i++) { /* 0 is the compiler */
        CXString a = clang_CompileCommand_getArg(cmd, i);
        const char *s = clang_getCString(a);
        unsigned dep = dependency_option(s);
        if (strcmp(s, "-o") == 0 && i + 1 < na)
            i++;
        else if (dep > 0)
            i += dep - 1;
        else if (strcmp(s, "-c") != 0 && strcmp(s, clang_getCString(file)) != 0 &&
                 strcmp(s, path) != 0 && strcmp(s, "--") != 0 &&
                 !names_file(clang_getCString(wd), s, path) &&
                 !(is_other_source(s) && !takes_value(prev)))
            args[(*n)++] = copy_str(s);
        free(prev);
        prev = copy_str(s);
        clang_disposeString(a);
    }
    free(prev);
    clang_disposeString(file);
    clang_disposeString(wd);
    clang_CompileCommands_dispose(cmds);
    return args;
}

void compdb_free_args(char **args, int n)
{
    for (int i = 0; i < n; i++)
        free(args[i]);
    free(args);
}

void compdb_close(void)
{
    if (db)
        clang_CompilationDatabase_dispose(db);
    db = NULL;
    tried = false;
}
