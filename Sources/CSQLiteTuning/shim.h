#ifndef TOKENLEDGER_SQLITE_TUNING_H
#define TOKENLEDGER_SQLITE_TUNING_H

/* sqlite3_config() is variadic, and Swift cannot call variadic C functions: this wraps the one
   call the ledger makes. The header declares what it uses rather than including <sqlite3.h>,
   whose declarations GRDB's own module already carries. */
int sqlite3_config(int op, ...);

/* SQLITE_CONFIG_PAGECACHE (7) with no buffer and no initial pages: each page cache then
   allocates its pages as it uses them, instead of 20 pages at its first read (SQLite's
   SQLITE_DEFAULT_PCACHE_INITSZ, some 90 KiB per connection, used or not). Only takes effect
   before SQLite's first connection of the process; SQLITE_MISUSE (21) after it. */
static inline int tokenledger_sqlite_no_initial_page_allocation(void) {
    return sqlite3_config(7, (void *)0, 0, 0);
}

#endif
