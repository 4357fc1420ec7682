package main

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// maxDeliveryToken bounds a delivery token file; the delivery plane refuses
// tokens over 8 KiB.
const maxDeliveryToken = 16 << 10

// keyURIWarnLength is the key URI length above which kdctl warns: ffmpeg
// releases that read key-info lines into 1024-byte buffers cut longer ones.
const keyURIWarnLength = 1024

// hlsKeyinfo: kdctl hls keyinfo KID [--key-file PATH] [--keyinfo-file PATH]
// [--iv HEX] [--token-file F | --token TOKEN] [--force]
//
// It writes the two files ffmpeg's HLS muxer needs for AES-128 (option
// -hls_key_info_file): the key file, the 16 key bytes in binary; and the
// key-info file, whose lines are
//
//	the key URI written into the playlist (the delivery URL)
//	the path of the key file, which ffmpeg reads to encrypt
//	the IV as 32 hex digits (optional; without it ffmpeg uses each
//	segment's sequence number)
func hlsKeyinfo(fs *flag.FlagSet) runner {
	keyFile := fs.String("key-file", "", "write the 16 raw key bytes to this new `file`, mode 0600 (default KID.key; an existing file is never overwritten)")
	infoFile := fs.String("keyinfo-file", "", "write the key-info file to this `path`, mode 0600 (default KID.keyinfo)")
	ivHex := fs.String("iv", "", "IV as 32 `hex` digits (default: the key's stored IV; with none, no IV line and ffmpeg uses the segment sequence number)")
	tokenFile := fs.String("token-file", "", "`file` holding a delivery token to append to the key URI as ?token= (for players that cannot send headers, such as Safari)")
	token := fs.String("token", "", "a delivery `token` to append to the key URI (prefer --token-file: a flag value shows in process lists)")
	force := fs.Bool("force", false, "replace an existing key-info file, in one step (key rotation with -hls_flags periodic_rekey); the key file is never replaced")
	return func(e *env, args []string) error {
		kid, err := oneKID("hls keyinfo", args)
		if err != nil {
			return err
		}
		tok, err := deliveryToken(*token, *tokenFile)
		if err != nil {
			return err
		}
		var iv []byte
		if *ivHex != "" {
			s := strings.TrimPrefix(strings.TrimPrefix(*ivHex, "0x"), "0X")
			if iv, err = hex.DecodeString(s); err != nil || len(iv) != 16 {
				return usageError("hls keyinfo: --iv must be 32 hex digits (16 bytes)")
			}
		}
		if *keyFile == "" {
			*keyFile = kid.String() + ".key"
		}
		if *infoFile == "" {
			*infoFile = kid.String() + ".keyinfo"
		}
		// ffmpeg opens the key file by the path on line 2, relative to its own
		// working directory: write it absolute.
		keyPath, err := filepath.Abs(*keyFile)
		if err != nil {
			return usageError("hls keyinfo: --key-file: %v", err)
		}
		if strings.ContainsAny(keyPath, "\r\n") {
			return usageError("hls keyinfo: --key-file: a path with a line break cannot go into a key-info file")
		}
		if infoPath, err := filepath.Abs(*infoFile); err == nil && infoPath == keyPath {
			return usageError("hls keyinfo: --key-file and --keyinfo-file name the same file")
		}
		if err := refuseExisting(*keyFile); err != nil {
			return refused(err)
		}
		if !*force {
			if err := refuseExisting(*infoFile); err != nil {
				return refused(fmt.Errorf("%w; --force replaces a key-info file", err))
			}
		}
		c, err := e.client()
		if err != nil {
			return err
		}
		uri, err := e.deliveryURL(c, kid, "envelope")
		if err != nil {
			return err
		}
		b, doc, err := e.exportCPIX(c, []string{kid.String()})
		if err != nil {
			return err
		}
		clear(b)
		defer clearDocument(doc)
		k := doc.Keys[0]
		if iv == nil {
			iv = k.IV
		} else if len(k.IV) > 0 && !bytes.Equal(iv, k.IV) {
			fmt.Fprintf(e.stderr, "kdctl: note: --iv differs from the IV stored with %s; the playlist will carry --iv\n", kid)
		}
		if tok != "" {
			sep := "?"
			if strings.Contains(uri, "?") {
				sep = "&"
			}
			uri += sep + "token=" + url.QueryEscape(tok)
		}
		if len(uri) > keyURIWarnLength {
			fmt.Fprintf(e.stderr, "kdctl: warning: the key URI is %d bytes; ffmpeg releases that read key-info lines into %d-byte buffers cut it short\n", len(uri), keyURIWarnLength)
		}
		var info strings.Builder
		info.WriteString(uri + "\n" + keyPath + "\n")
		if len(iv) > 0 {
			info.WriteString(hex.EncodeToString(iv) + "\n")
		}
		if err := createExclusive(*keyFile, k.Value); err != nil {
			return refused(err)
		}
		write := createExclusive
		if *force {
			write = replaceFile
		}
		if err := write(*infoFile, []byte(info.String())); err != nil {
			os.Remove(*keyFile)
			return refused(err)
		}
		fmt.Fprintf(e.stderr, "kdctl: wrote the key of %s to %s (in the clear: delete it once packaging is done) and the key-info file %s\n", kid, *keyFile, *infoFile)
		if tok == "" {
			fmt.Fprintln(e.stderr, "kdctl: note: the key URI carries no token; players must send one in the Authorization header")
		}
		_, err = fmt.Fprintln(e.stdout, *infoFile)
		return err
	}
}

// deliveryToken returns the token given with --token or in --token-file
// ("" for neither), refusing one with white space or control characters.
func deliveryToken(flagValue, file string) (string, error) {
	if flagValue != "" && file != "" {
		return "", usageError("hls keyinfo: give --token or --token-file, not both")
	}
	tok, what := strings.TrimSpace(flagValue), "--token"
	if file != "" {
		b, err := readSmallFile(file, maxDeliveryToken)
		if err != nil {
			return "", usageError("hls keyinfo: --token-file: %v", err)
		}
		tok, what = strings.TrimSpace(string(b)), "token file "+file
		clear(b)
		if tok == "" {
			return "", usageError("hls keyinfo: %s is empty", what)
		}
	}
	if strings.ContainsFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return "", usageError("hls keyinfo: %s: want the token alone on one line", what)
	}
	return tok, nil
}
