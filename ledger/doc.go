// Package ledger is orproxy's usage ledger: one row per client request that
// reached OpenRouter, kept in a SQLite database of the user's own.
//
// Every request orproxy forwards costs the user money, and OpenRouter's own
// dashboard cannot say which local client, endpoint or hour spent it. The
// ledger answers that offline (`orproxy usage`), feeds the daily and monthly
// budgets, and stays readable by any SQLite tool (`sqlite3 usage.db`): one
// table, requests, with the time both as UTC text and as indexed unix
// milliseconds.
//
// A row records what was asked, what was served and what it cost, never a
// prompt, an answer or a secret. Rows are written off the request path: Add
// puts a row on a bounded queue and returns; a goroutine writes the queue in
// small transactions at least every FlushInterval, so a SIGKILL loses at most
// about that much. A full queue or a broken database drops rows and counts
// them instead of slowing or failing a request; the writer keeps retrying
// and recovers when the disk does.
package ledger
