// Command kdctl is the command-line client of the keydelivery admin API. It
// talks to the admin listener over HTTP, and also makes the local material a
// deployment needs: delivery tokens for tests, key-encryption-key lines and
// admin credentials.
//
// Usage:
//
//	kdctl [--server URL] [--admin-token-file FILE] [--timeout D] COMMAND [flags] [args]
//
//	kdctl keys create [--id KID] [--name N] [--type T] [--key-file F] [--iv B64] [--quiet]
//	kdctl keys get KID
//	kdctl token mint --signing-key FILE [--cert FILE] --issuer I --audience A [--kid KID]... [--ttl 1h] [--subject S]
//	kdctl kek generate [--id ID]
//	kdctl adminkey generate --name N --role reader|writer|exporter|admin
//	kdctl help
//
// The server is --server, else $KD_SERVER, else http://127.0.0.1:8081. The
// admin credential is read from the file named by --admin-token-file, else
// from $KD_ADMIN_TOKEN, else from the file named by $KD_ADMIN_TOKEN_FILE. It
// is never taken from a flag value, so it never shows up in a process list
// or a shell history. Global flags may also follow the subcommand.
//
// Exit codes, which scripts can rely on:
//
//	0  success
//	1  refused: the server answered 4xx (its problem code, reason and detail
//	   are printed on stderr), or a local input was unusable (an unreadable
//	   key file, a signing key that does not load)
//	2  usage error: unknown command, bad flag or argument, no credential
//	3  the server is unreachable, answered 5xx, or answered something that
//	   is not the admin API; retrying later may help
//
// Results go to stdout (JSON as the server sent it, indented; or one value
// per line), everything else to stderr.
package main
