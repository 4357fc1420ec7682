package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

// The key seed vector.
const (
	vectorSeed = "XVBovsmzhP9gRIZxWfFta3VVRPzVEWmJsazEJ46I"
	vectorKey  = "7lIBmBeF+EGDaguNx7EgQA=="
	seedID     = "5b1d7a3e-2f4c-4e8a-9d6b-1c0e3f2a4b5d"
)

func TestKeySeeds(t *testing.T) {
	srv, envs := session(t, "admin", "writer")
	raw, _ := base64.StdEncoding.DecodeString(vectorSeed)
	for name, content := range map[string][]byte{
		"base64": []byte(vectorSeed + "\n"),
		"hex":    []byte(hex.EncodeToString(raw)),
		"raw":    raw,
	} {
		got, err := readSeedFile(writeFile(t, "seed-"+name, content))
		if err != nil || base64.StdEncoding.EncodeToString(got) != vectorSeed {
			t.Errorf("%s seed file: %x %v", name, got, err)
		}
	}
	bad := writeFile(t, "bad-seed", []byte("c2hvcnQ="))
	if r := kdctl(t, envs["admin"], "keyseeds", "create", "--seed-file", bad); r.code != 1 || strings.Contains(r.stderr, "c2hvcnQ") {
		t.Errorf("bad seed file: %d %q", r.code, r.stderr)
	}

	file := writeFile(t, "seed", []byte(vectorSeed+"\n"))
	// Only an admin stores a seed.
	if r := kdctl(t, envs["writer"], "keyseeds", "create", "--seed-file", file); r.code != 1 || !strings.Contains(r.stderr, "role_insufficient") {
		t.Errorf("writer: %d %q", r.code, r.stderr)
	}
	r := kdctl(t, envs["admin"], "keyseeds", "create", "--id", strings.ToUpper(seedID), "--name", "catalogue", "--seed-file", file)
	if r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil || m["id"] != seedID || m["name"] != "catalogue" {
		t.Errorf("create printed %q", r.stdout)
	}
	if r := kdctl(t, envs["admin"], "keyseeds", "create"); r.code != 0 {
		t.Errorf("random seed: %d %s", r.code, r.stderr)
	}
	r = kdctl(t, envs["writer"], "keyseeds", "list")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, `"id":"`+seedID+`"`) {
		t.Errorf("list: %d %q %s", r.code, r.stdout, r.stderr)
	}

	r = kdctl(t, envs["writer"], "keys", "create", "--id", kidA, "--key-seed-id", seedID, "--quiet")
	if r.code != 0 || strings.TrimSpace(r.stdout) != kidA {
		t.Fatalf("keys create --key-seed-id: %d %q %s", r.code, r.stdout, r.stderr)
	}
	k, err := srv.keys.Get(context.Background(), mustKID(t, kidA))
	if err != nil || base64.StdEncoding.EncodeToString(k.Value[:]) != vectorKey || k.Method.String() != "KeySeed" {
		t.Errorf("derived key %x %v %v", k.Value, k.Method, err)
	}
	r = kdctl(t, envs["writer"], "keys", "create", "--key-seed-id", kidB)
	if r.code != 1 || !strings.Contains(r.stderr, "unknown_key_seed") {
		t.Errorf("unknown seed: %d %q", r.code, r.stderr)
	}
	for _, out := range []string{r.stdout, r.stderr, srv.audit.String()} {
		if strings.Contains(out, vectorSeed) || strings.Contains(out, vectorKey) {
			t.Errorf("a secret leaked: %q", out)
		}
	}

	for name, args := range map[string][]string{
		"key file and seed":  {"keys", "create", "--key-file", file, "--key-seed-id", seedID},
		"bad key seed id":    {"keys", "create", "--key-seed-id", "nope"},
		"bad seed id":        {"keyseeds", "create", "--id", "nope"},
		"list with args":     {"keyseeds", "list", "x"},
		"unknown subcommand": {"keyseeds", "delete"},
		"missing subcommand": {"keyseeds"},
	} {
		if r := kdctl(t, envs["admin"], args...); r.code != 2 {
			t.Errorf("%s: %d %q", name, r.code, r.stderr)
		}
	}
}
