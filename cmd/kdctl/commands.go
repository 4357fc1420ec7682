package main

import (
	"flag"
	"strings"
)

// runner runs a command with its positional arguments, once its flags are
// parsed.
type runner func(e *env, args []string) error

// A command is one kdctl command. The table of commands is the one source
// of kdctl's dispatch, of its help (kdctl help, kdctl GROUP --help, kdctl
// COMMAND --help), of its shell completion and of the synopsis in the
// README and the package documentation (TestSynopsisInDocs compares them).
// Adding a command is adding one entry.
type command struct {
	// name is the words that select it: "keys create", "kid".
	name string
	// args is the synopsis of its positional arguments ("KID", "FILE|-",
	// "KID..."); "" when it takes none (any is then refused).
	args string
	// flags is the synopsis of its own flags, as help shows it; every
	// flag setup defines appears in it and nothing else does
	// (TestCommandTable).
	flags string
	// summary says what it does, for the command list and its help.
	summary string
	// role is the admin role it needs ("reader", "writer", "exporter",
	// "admin"), named when the server answers 403; "" for a command that
	// never calls the server, which then takes no connection flags.
	role string
	// choices lists the values a flag takes, for completion ("" is the
	// positional arguments).
	choices map[string][]string
	// setup defines the command's own flags on fs and returns what runs
	// it.
	setup func(fs *flag.FlagSet) runner
}

// server reports whether the command calls the admin API.
func (c *command) server() bool { return c.role != "" }

// synopsis is the command's usage line: "kdctl NAME ARGS FLAGS".
func (c *command) synopsis() string {
	s := "kdctl " + c.name
	if c.args != "" {
		s += " " + c.args
	}
	if c.flags != "" {
		s += " " + c.flags
	}
	return s
}

// group is the first word of a two-word command ("keys"), else "".
func (c *command) group() string {
	if g, _, ok := strings.Cut(c.name, " "); ok {
		return g
	}
	return ""
}

// groups describes each group of commands, in the order help lists them.
var groups = []struct{ name, summary string }{
	{"keys", "content keys on the server"},
	{"keyseeds", "PlayReady key seeds on the server"},
	{"hls", "files for HLS packagers"},
	{"speke", "SPEKE v2, as packagers ask for keys"},
	{"token", "delivery tokens (offline)"},
	{"kek", "key-encryption keys (offline)"},
	{"adminkey", "admin credentials (offline)"},
	{"store", "the key store: adopting it, compacting its file (offline)"},
}

// contentKeyTypes are the values of --type.
var contentKeyTypes = []string{"CommonEncryption", "StorageEncryption", "ConfigurationEncryption", "EnvelopeEncryption", "0", "1", "2", "4"}

// commands is the table of every command, in the order help lists them.
var commands = []*command{
	{
		name: "keys create", flags: "[--id KID] [--name N] [--type T] [--key-file F | --key-seed-id ID] [--iv B64] [--quiet]",
		summary: "create a key (random value), import the 16-byte key in F (raw, hex or base64), or derive it " +
			"from a stored key seed and the KID; prints the key's metadata, or only its KID with --quiet",
		role: "writer", choices: map[string][]string{"type": contentKeyTypes}, setup: keysCreate,
	},
	{
		name: "keys get", args: "KID",
		summary: "print a key's metadata (never its material)",
		role:    "reader", setup: keysGet,
	},
	{
		name: "keys import", args: "FILE|-", flags: "[--format json|cpix] [--type T]",
		summary: "import a JSON array [{\"Id\",\"Data\",\"Iv\"}] or a CPIX document (format from --format, else the " +
			"extension .json/.xml/.cpix, else the first byte); prints each key's outcome (created or unchanged). " +
			"An entry without Id gets its KID from the server (IdGenerated): the KID its bytes were stored under " +
			"by an earlier import without Id (unchanged), else a new one, so importing a file again stores nothing twice. " +
			"A refused batch prints each bad entry; a conflict prints each conflicting KID and whether its key or its type differs",
		role: "writer", choices: map[string][]string{"format": {"json", "cpix"}, "type": contentKeyTypes}, setup: keysImport,
	},
	{
		name: "keys list", flags: "[--limit N] [--cursor C] [--all] [--asset ID]",
		summary: "print key metadata, one JSON object per line; --all follows every page; --asset lists the keys of one asset",
		role:    "reader", setup: keysList,
	},
	{
		name: "keys export", args: "KID...", flags: "[--out FILE] [--recipient-cert FILE]...",
		summary: "print (or write to a new 0600 FILE) a CPIX document holding the keys in the clear, " +
			"or encrypted to the recipients' certificates",
		role: "exporter", setup: keysExport,
	},
	{
		name: "keys delete", args: "KID",
		summary: "soft-delete a key: no longer delivered, kept (restorable) for the server's retention period",
		role:    "writer", setup: keysDelete,
	},
	{
		name: "keys restore", args: "KID",
		summary: "bring a soft-deleted key back",
		role:    "writer", setup: keysRestore,
	},
	{
		name: "keys purge", args: "KID",
		summary: "destroy a soft-deleted key for good",
		role:    "admin", setup: keysPurge,
	},
	{
		name: "keys delivery-url", args: "KID", flags: "[--type envelope|clearkey|playready|widevine|fairplay]",
		summary: "print the URL a player uses for the key",
		role:    "reader", choices: map[string][]string{"type": deliveryTypes}, setup: keysDeliveryURL,
	},
	{
		name: "keyseeds create", flags: "[--id ID] [--name N] [--seed-file F]",
		summary: "store a PlayReady key seed: the 30 bytes in F (raw, hex or base64), or a random one; prints its metadata, never the seed",
		role:    "admin", setup: keyseedsCreate,
	},
	{
		name:    "keyseeds list",
		summary: "print the key seeds' metadata, one JSON object per line",
		role:    "reader", setup: keyseedsList,
	},
	{
		name: "hls keyinfo", args: "KID", flags: "[--key-file PATH] [--keyinfo-file PATH] [--iv HEX] [--token-file F | --token TOKEN] [--force]",
		summary: "export the key into a new 0600 key file (default KID.key) and write the key-info file ffmpeg's " +
			"-hls_key_info_file reads (default KID.keyinfo): key URI, key file path, optional IV; prints the key-info file's path",
		role: "exporter", setup: hlsKeyinfo,
	},
	{
		name: "speke request", flags: "--content ID [--kid KID]... --system S[,S...] [--track-type T[,T...]] [--scheme S] [--period N] [--out FILE]",
		summary: "send a SPEKE v2 request as a packager would and print each key (in the clear: keep the output " +
			"secret) with its signaling, decoded; systems: widevine, playready, fairplay, aes128 (HLS AES-128), " +
			"clearkey, common (W3C common PSSH); --out also keeps the CPIX answer in a new 0600 file",
		role: "packager", choices: map[string][]string{"scheme": {"cenc", "cbcs", "cens", "cbc1"}}, setup: spekeRequest,
	},
	{
		name: "token mint", flags: "--signing-key FILE [--cert FILE] --issuer I --audience A [--kid KID]... [--content ID]... [--ttl 1h] [--subject S]",
		summary: "print an ES256 delivery token granting the given KIDs, and every key recorded under the given content IDs " +
			"(a live stream's rotating keys)",
		setup: tokenMint,
	},
	{
		name: "kek generate", flags: "[--id ID]",
		summary: "print a new key-encryption-key line for the KEK file (id kek-YYYYMMDD)",
		setup:   kekGenerate,
	},
	{
		name: "adminkey generate", flags: "--name N --role reader|writer|exporter|admin|packager [--content PATTERN]...",
		summary: "print a new admin secret (first line) and its credentials-file line; --content limits a packager " +
			"to content IDs ('*' matches any characters)",
		choices: map[string][]string{"role": {"reader", "writer", "exporter", "admin", "packager"}}, setup: adminkeyGenerate,
	},
	{
		name: "store adopt",
		summary: "take the key store as it is: after the server found it lost its data (store_lost), or once " +
			"for a new Redis store; writes its marker and the KEK check values, and the server becomes ready",
		role: "admin", setup: storeAdopt,
	},
	{
		name: "store compact", args: "PATH",
		summary: "rewrite a stopped server's bbolt store file (PATH or bolt:PATH) without its free pages, " +
			"which keep the sealed values of purged keys until reused; prints the sizes before and after",
		setup: storeCompact,
	},
	{
		name: "kid", args: "KID", flags: "[--playready]",
		summary: "print one KID in every form: UUID, hex, base64url (ClearKey license requests), the AMS " +
			"nb:kid:UUID: form and the PlayReady GUID (little-endian bytes, base64, as in a PlayReady header). " +
			"KID may be any of these; base64 is read in UUID byte order unless --playready",
		setup: kidForms,
	},
	{
		name: "completion", args: "bash|zsh",
		summary: "print the shell completion script: source <(kdctl completion bash), or kdctl completion zsh > \"${fpath[1]}/_kdctl\"",
		choices: map[string][]string{"": {"bash", "zsh"}}, setup: completion,
	},
	{
		name:    "version",
		summary: "print kdctl's version (also kdctl --version)",
		setup:   versionCommand,
	},
}

// lookup finds the command that words start with, and how many words its
// name takes.
func lookup(words []string) (*command, int) {
	for _, c := range commands {
		n := strings.Count(c.name, " ") + 1
		if len(words) >= n && strings.Join(words[:n], " ") == c.name {
			return c, n
		}
	}
	return nil, 0
}

// isGroup reports whether name is a group of commands.
func isGroup(name string) bool {
	for _, g := range groups {
		if g.name == name {
			return true
		}
	}
	return false
}

// topNames are the words that may follow kdctl: groups and one-word
// commands, and help.
func topNames() []string {
	var names []string
	for _, g := range groups {
		names = append(names, g.name)
	}
	for _, c := range commands {
		if c.group() == "" {
			names = append(names, c.name)
		}
	}
	return append(names, "help")
}

// subNames are the second words of group's commands.
func subNames(group string) []string {
	var names []string
	for _, c := range commands {
		if c.group() == group {
			names = append(names, strings.TrimPrefix(c.name, group+" "))
		}
	}
	return names
}

// synopsisLines is kdctl's synopsis, one line per command, as the README
// and the package documentation show it (TestSynopsisInDocs).
func synopsisLines() []string {
	var lines []string
	for _, c := range commands {
		lines = append(lines, c.synopsis())
	}
	return append(lines, "kdctl help [COMMAND]")
}
