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
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static CXCompilationDatabase db;
static bool tried, failed;
static char db_dir[PATH_MAX];

/* Whether dir has a compile_commands.json, readable or not: one found that
 * cannot be read is an error to tell, not a reason to search on. */
static bool has_db(const char *dir)
{
    char path[PATH_MAX + 32];
    struct stat st;
    snprintf(path, sizeof path, "%s/compile_commands.json", dir);
    return lstat(path, &st) == 0; /* a dangling link too: it cannot be read, which is said */
}

/* Why dir's database cannot be read, found before libclang is asked
 * (which says only that a file is missing), or NULL. */
static const char *unreadable(const char *dir, char *why, size_t size)
{
    char path[PATH_MAX + 32];
    struct stat st;
    if (stat(dir, &st) != 0)
        return snprintf(why, size, "%s: %s", dir, strerror(errno)), why;
    if (!S_ISDIR(st.st_mode))
        return snprintf(why, size, "%s is not a directory", dir), why;
    snprintf(path, sizeof path, "%s/compile_commands.json", dir);
    if (stat(path, &st) != 0)
        return lstat(path, &st) == 0 ? snprintf(why, size, "%s is a link to a missing file", path)
                                     : snprintf(why, size, "%s has no compile_commands.json", dir),
               why;
    if (!S_ISREG(st.st_mode))
        return snprintf(why, size, "%s is not a regular file", path), why;
    FILE *f = fopen(path, "r");
    if (!f)
        return snprintf(why, size, "%s: %s", path, strerror(errno)), why;
    fclose(f);
    return NULL;
}

/* libclang's compilation database, its complaints kept from stderr: they
 * come prefixed "LIBCLANG TOOLING ERROR" and name a compile_flags.txt the
 * user never asked for. Those that say why the JSON was refused are
 * printed, indented, after cctx-vet's own line when it fails. */
static CXCompilationDatabase load(const char *dir)
{
    CXCompilationDatabase_Error err;
    FILE *said = tmpfile();
    int saved = said ? dup(2) : -1;
    fflush(stderr);
    if (saved >= 0)
        dup2(fileno(said), 2);
    CXCompilationDatabase d = clang_CompilationDatabase_fromDirectory(dir, &err);
    if (saved >= 0) {
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
    }
    if (err != CXCompilationDatabase_NoError) {
        if (d)
            clang_CompilationDatabase_dispose(d);
        d = NULL;
        fprintf(stderr, "cctx-vet: cannot read %s/compile_commands.json:\n", dir);
        char line[1024];
        static const char noise[] = "LIBCLANG TOOLING ERROR: ";
        if (said)
            rewind(said);
        while (said && fgets(line, sizeof line, said)) {
            const char *text = line;
            if (strncmp(text, noise, sizeof noise - 1) == 0)
                text += sizeof noise - 1;
            if (text[strspn(text, " \t\n")] && !strstr(text, "fixed-compilation-database"))
                fprintf(stderr, "    %s", text);
        }
    }
    if (said)
        fclose(said);
    return d;
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
    snprintf(db_dir, sizeof db_dir, "%s", found);
    char why[2 * PATH_MAX + 64];
    if (unreadable(found, why, sizeof why)) {
        fprintf(stderr, "cctx-vet: cannot read the compile database: %s\n", why);
        failed = true;
        return;
    }
    db = load(found);
    failed = !db;
}

bool compdb_open(const char *dir)
{
    if (!tried)
        open_db(dir);
    return !failed;
}

const char *compdb_dir(void)
{
    return db ? db_dir : NULL;
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
 * source's name (`-include config.c`) or end as one does (`-D SRC=main.c`,
 * `-I dir.c`): that argument is no source, and left out it would leave its
 * option to take the argument after it. */
static bool takes_value(const char *option)
{
    static const char *const with_value[] = {"-include",
                                             "-imacros",
                                             "-Xclang",
                                             "-Xpreprocessor",
                                             "-Xlinker",
                                             "-Xassembler",
                                             "-Xanalyzer",
                                             "-x",
                                             "-T",
                                             "-aux-info",
                                             "-dumpbase",
                                             "-main-file-name",
                                             "-D",
                                             "-U",
                                             "-I",
                                             "-isystem",
                                             "-iquote",
                                             "-idirafter",
                                             "-iprefix",
                                             "-iwithprefix",
                                             "-iwithprefixbefore",
                                             "-isysroot",
                                             "--sysroot",
                                             "-imultilib",
                                             "-B",
                                             "-L",
                                             "-F",
                                             "-A",
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
    tried = failed = false;
}
