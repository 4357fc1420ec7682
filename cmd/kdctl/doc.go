// Command kdctl is the command-line client of the keydelivery admin API. It
// talks to the admin listener over HTTP, and also makes the local material a
// deployment needs: delivery tokens for tests, key-encryption-key lines and
// admin credentials.
//
// Usage:
//
//	kdctl [connection flags] COMMAND [flags] [args]
//	kdctl COMMAND --help
//	kdctl --version
//
// The commands (the table in commands.go is the one source of this list,
// of kdctl help and of the README's; a test keeps them equal):
//
//	kdctl keys create [--id KID] [--name N] [--type T] [--key-file F | --key-seed-id ID] [--iv B64] [--quiet]
//	kdctl keys get KID
//	kdctl keys import FILE|- [--format json|cpix] [--type T]
//	kdctl keys list [--limit N] [--cursor C] [--all] [--asset ID]
//	kdctl keys export KID... [--out FILE] [--recipient-cert FILE]...
//	kdctl keys delete KID
//	kdctl keys restore KID
//	kdctl keys purge KID
//	kdctl keys delivery-url KID [--type envelope|clearkey|playready|widevine|fairplay]
//	kdctl keyseeds create [--id ID] [--name N] [--seed-file F]
//	kdctl keyseeds list
//	kdctl hls keyinfo KID [--key-file PATH] [--keyinfo-file PATH] [--iv HEX] [--token-file F | --token TOKEN] [--force]
//	kdctl speke request --content ID [--kid KID]... --system S[,S...] [--track-type T[,T...]] [--scheme S] [--period N] [--out FILE]
//	kdctl token mint --signing-key FILE [--cert FILE] --issuer I --audience A [--kid KID]... [--content ID]... [--ttl 1h] [--subject S]
//	kdctl kek generate [--id ID]
//	kdctl adminkey generate --name N --role reader|writer|exporter|admin|packager [--content PATTERN]...
//	kdctl store adopt
//	kdctl store compact PATH
//	kdctl kid KID [--playready]
//	kdctl completion bash|zsh
//	kdctl version
//	kdctl help [COMMAND]
//
// Every level answers --help: kdctl --help, kdctl keys --help, kdctl keys
// import --help (a command's help lists only the flags it takes, with the
// defaults the environment sets, such as KD_SERVER). A mistyped command or
// flag is one line naming the nearest ones.
//
// The server is --server, else $KD_SERVER, else http://127.0.0.1:8081. The
// admin credential is read from the file named by --admin-token-file, else
// from $KD_ADMIN_TOKEN, else from the file named by $KD_ADMIN_TOKEN_FILE. It
// is never taken from a flag value, so it never shows up in a process list
// or a shell history. The connection flags (--server, --admin-token-file,
// --timeout) may come before the command or after it; commands that never
// call the server (token mint, kek generate, adminkey generate, store
// compact, kid, completion) do not take them.
//
// # Keys
//
// keys import sends a file (or standard input, "-") to POST
// /api/keys/import: the JSON array [{"Id","Data","Iv"}] as application/json,
// or a CPIX document as application/cpix+xml. The format is --format, else
// the extension (.json; .xml or .cpix), else the first byte that is not
// white space ('[' JSON, '<' CPIX). It prints the server's answer, one
// outcome per key (Status created or unchanged), and a summary on stderr.
// A JSON entry without Id gets its KID from the server (IdGenerated): the
// KID its bytes were stored under by an earlier import without Id
// (unchanged), else a new one; so importing the same file again stores
// nothing twice. A refused batch (400) lists every bad entry on stderr
// (index, KID, reason, detail) and nothing is imported; a conflict (409)
// lists each KID already stored with another key, or with the same key and
// another content key type, on stderr, prints the outcome of every entry on
// stdout (the other keys were imported) and exits 1.
//
// keys list prints each key's metadata as one compact JSON object per line,
// never key material. Without --all it prints one page and, when there may
// be more, names the cursor to continue from on stderr.
//
// keys export writes a CPIX document with the keys in the clear to stdout or
// to a new file (--out, mode 0600; an existing file is never overwritten),
// and warns on stderr that it holds key material. It needs the exporter
// role. With --recipient-cert FILE (PEM or DER, repeatable) the keys are
// encrypted to those certificates as CPIX specifies, and no key is in the
// clear.
//
// keys delete is a soft delete (the key is no longer delivered but is kept
// for the server's retention period); keys restore brings it back; keys
// purge destroys a deleted key for good (role admin).
//
// # Key seeds
//
// keyseeds create stores a PlayReady key seed on the server (role admin):
// the 30 bytes of --seed-file (raw, 60 hex digits or standard base64), or a
// random seed the server makes. It prints the seed's metadata; the seed is
// never printed, and never taken from a flag value. keys create
// --key-seed-id ID then derives a key from that seed and the KID (creation
// method KeySeed), as PlayReady license servers holding the same seed do.
//
// # HLS
//
// hls keyinfo KID makes the two files that ffmpeg's HLS muxer reads for
// AES-128 encryption (ffmpeg -hls_key_info_file KID.keyinfo): the key file,
// the 16 key bytes in binary (default KID.key, a new file of mode 0600,
// never overwritten), and the key-info file (default KID.keyinfo, mode
// 0600) of two or three lines:
//
//	https://keys.example.com/keys/KID?token=...   the key URI for the playlist
//	/abs/path/KID.key                             the key file, as an absolute path
//	000102030405060708090a0b0c0d0e0f              the IV, 32 hex digits (optional)
//
// The key URI is the key's envelope delivery URL from the server, with
// ?token= and the delivery token (--token-file, or --token) appended when
// one is given, for players such as Safari's that cannot send an
// Authorization header. The IV line is --iv, else the IV stored with the
// key; with neither it is left out and ffmpeg uses each segment's sequence
// number. An existing key-info file is refused unless --force, which
// replaces it in one step (a rename), so an ffmpeg running with -hls_flags
// periodic_rekey never reads it half written. It needs the exporter role
// and prints the key-info file's path. Delete the key file once packaging is
// done.
//
// # SPEKE
//
// speke request sends a SPEKE v2 request (POST /speke/v2, CPIX 2.3,
// X-Speke-Version: 2.0) as a packager would, for --content ID, the KIDs
// given (one random KID per track type when none is) and the DRM systems of
// --system (widevine, playready, fairplay, aes128, clearkey, common). It
// prints each key, in the clear, with its signaling decoded (PSSH boxes,
// playlists, ContentProtection), or the whole answer with --out. It needs a
// packager credential (or admin). A refusal is the server's plain-text
// SPEKE error, printed as it is. adminkey generate --role packager
// [--content PATTERN]... prints a credentials line for a packager, limited
// to those content IDs.
//
// # Retries
//
// A request whose answer may change is sent again by kdctl itself, up to
// $KD_RETRIES times (default 5), waiting 250 ms doubled each time (at most
// 8 s, less a random part), or the server's Retry-After when longer: when
// the server could not be reached, the connection dropped or timed out, or
// the answer was 503 (a store that did not answer in time, a write its
// replicas did not confirm: not_replicated), 502, 504 or 429. Each retry is
// reported on stderr. Every admin write is safe to repeat: a create that
// finds its key stored as asked answers "unchanged" (exit 0), and every
// attempt of a create or import carries the same Idempotency-Key, so a
// random key created by an attempt whose answer was lost is the key kdctl
// prints; a repeated restore that finds the key live, or purge that finds
// it gone, means the earlier attempt did it. A random key seed (keyseeds
// create without --id and --seed-file) is sent again only if it never
// reached the server.
//
// # The store
//
// store adopt (role admin) takes the key store as it is: after the server
// found that it lost its data (store_lost), or once for a new Redis store,
// which the server cannot tell from one that lost everything. It writes the
// store marker and the KEK check values, and the server becomes ready.
//
// # Exit codes
//
// Exit codes, which scripts can rely on:
//
//	0  success
//	1  refused: the server answered 4xx (its problem code, reason and detail
//	   are printed on stderr; a 403 also names the role the command needs),
//	   or it is not configured for the command (501 not_configured: the
//	   detail names the setting), or a local input was unusable (an
//	   unreadable key or import file, a signing key that does not load, a
//	   file kdctl will not overwrite); the same command will fail again
//	2  usage error: unknown command, bad flag or argument, no credential
//	3  the server is unreachable, answered 5xx (other than 501), or
//	   answered something that is not the admin API; retrying later may help
//
// # KIDs and completion
//
// kid prints one KID in every form: the UUID, 32 hex digits, base64url of
// its bytes (what a ClearKey license request carries), the AMS
// nb:kid:UUID: form, and the PlayReady GUID (the little-endian bytes in
// base64, as a PlayReady header holds it). completion bash|zsh prints a
// completion script generated from the command table.
//
// Results go to stdout (JSON as the server sent it, indented; JSON lines
// for keys list; or one value per line), everything else to stderr.
package main
