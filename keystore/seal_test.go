package keystore_test

import (
	"crypto/rand"
	"strings"
	"testing"

	"github.com/keydelivery/keydelivery/keystore"
)

func TestParseKeyring(t *testing.T) {
	l1, _ := keystore.GenerateKEKLine(rand.Reader, "kek-2026.11")
	l2, _ := keystore.GenerateKEKLine(rand.Reader, "old_1")
	kr, err := keystore.ParseKeyring([]byte("# comment\n\n"+l1+"\n  "+l2+"  \n"), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if kr.PrimaryID() != "kek-2026.11" || len(kr.IDs()) != 2 {
		t.Fatalf("primary %q ids %v", kr.PrimaryID(), kr.IDs())
	}
	id2 := strings.Fields(l2)[1]
	const fixed = "+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/v7+/s=" // 32 bytes of 0xfb: has '+', '/' and padding
	bad := map[string]string{
		"empty":          "# nothing\n",
		"one field":      "k1\n",
		"three fields":   l1 + " extra\n",
		"short key":      "k1 AAAA\n",
		"not base64":     "k1 !!!!\n",
		"url base64":     "k1 " + strings.NewReplacer("+", "-", "/", "_").Replace(fixed) + "\n",
		"bad id":         "k/1 " + id2 + "\n",
		"duplicate id":   "k1 " + id2 + "\nk1 " + id2 + "\n",
		"long id":        strings.Repeat("a", 65) + " " + id2 + "\n",
		"key 16 bytes":   "k1 AAAAAAAAAAAAAAAAAAAAAA==\n",
		"no padding b64": "k1 " + strings.TrimRight(fixed, "=") + "\n",
	}
	if _, err := keystore.ParseKeyring([]byte("k1 "+fixed), rand.Reader); err != nil {
		t.Fatalf("fixed key refused: %v", err)
	}
	for name, text := range bad {
		if _, err := keystore.ParseKeyring([]byte(text), rand.Reader); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), id2) {
			t.Errorf("%s: error leaks the kek: %v", name, err)
		}
	}
}
