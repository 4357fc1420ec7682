package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/keydelivery/keydelivery/internal/redistest"
	"github.com/keydelivery/keydelivery/internal/waittest"
)

// redisCommand sends one command to a Redis server and returns its first
// reply line.
func redisCommand(t *testing.T, addr string, args ...string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

func adminDo(t *testing.T, method, url, body string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: out.Bytes()}
}

// TestStoreLost: the server on an empty Redis (a new store, or one that
// lost everything) is not ready (store_lost), writes nothing into it and
// refuses writes, until an operator adopts it; a store emptied under the
// running server (FLUSHALL, as a restart without persistence does) is found
// within --store-check-interval: readiness fails, a key it held answers 503
// store_lost (never 404), the gauge is 1, and a restarted server does not
// adopt it either.
func TestStoreLost(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{Persistence: true})
	m := newMaterial(t)
	store := "redis://" + rs.Addr + "/0"
	args := m.args(store, "--key-cache-ttl", "0", "--store-check-interval", "50ms")
	s := startListening(t, args)
	r := do(t, "GET", s.adminURL+"/readyz", nil)
	if r.status != 503 || !strings.Contains(string(r.body), `"store_data":"store_lost: `) {
		t.Fatalf("readyz on an empty store: %d %s", r.status, r.body)
	}
	if !strings.Contains(s.stderr.String(), `"severity":"critical","reason":"store_lost"`) {
		t.Fatalf("no critical store_lost log line:\n%s", s.stderr.String())
	}
	if a := adminDo(t, "POST", s.adminURL+"/api/keys", "{}"); a.status != 503 || problemOf(t, a)["reason"] != "store_lost" {
		t.Fatalf("create into an unadopted store: %d %s", a.status, a.body)
	}
	if got := redisCommand(t, rs.Addr, "DBSIZE"); got != ":0" {
		t.Fatalf("the server wrote into the unadopted store: DBSIZE %s", got)
	}
	// The operator adopts it.
	if a := adminDo(t, "POST", s.adminURL+"/api/store/adopt", ""); a.status != 200 || !strings.Contains(string(a.body), `"status":"adopted"`) {
		t.Fatalf("adopt: %d %s", a.status, a.body)
	}
	waittest.For(t, "readiness after adopting", func() bool { return do(t, "GET", s.adminURL+"/readyz", nil).status == 200 })
	value := randomKey(t)
	kid := s.createKey(t, value, nil)
	tok := m.token(t, kid)
	if a := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(tok)); a.status != 200 || !bytes.Equal(a.body, value[:]) {
		t.Fatalf("key: %d", a.status)
	}

	// The store loses its data under the running server.
	if got := redisCommand(t, rs.Addr, "FLUSHALL"); got != "+OK" {
		t.Fatal(got)
	}
	waittest.For(t, "the loss to be noticed", func() bool { return do(t, "GET", s.adminURL+"/readyz", nil).status == 503 })
	a := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(tok))
	if a.status != 503 || problemOf(t, a)["reason"] != "store_lost" || a.header.Get("Retry-After") == "" {
		t.Fatalf("a key the lost store held: %d %s; want 503 store_lost, never 404", a.status, a.body)
	}
	if mt := do(t, "GET", s.adminURL+"/metrics", nil); !strings.Contains(string(mt.body), "keydelivery_store_lost 1") {
		t.Fatal("keydelivery_store_lost is not 1")
	}
	if got := redisCommand(t, rs.Addr, "DBSIZE"); got != ":0" {
		t.Fatalf("the server wrote into the lost store: DBSIZE %s", got)
	}
	s.stop(t)

	// A restarted server does not take the emptied store as new.
	s = startListening(t, args)
	if r := do(t, "GET", s.adminURL+"/readyz", nil); r.status != 503 || !strings.Contains(string(r.body), "store_lost") {
		t.Fatalf("readyz of a restarted server on the emptied store: %d %s", r.status, r.body)
	}
	if got := redisCommand(t, rs.Addr, "DBSIZE"); got != ":0" {
		t.Fatalf("a restarted server wrote into the emptied store (a KEK check value?): DBSIZE %s", got)
	}
}

// TestRedisSettingsCheck: a Redis that can lose keys (no append-only file)
// is logged with reason redis_not_durable naming the setting and its fix,
// counted in the gauge, and shown in /readyz, which stays ready; with
// --redis-require-durable the server refuses to start.
func TestRedisSettingsCheck(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{}) // no persistence
	m := newMaterial(t)
	store := "redis://" + rs.Addr + "/0"
	s := start(t, m.args(store, "--store-adopt"), nil)
	logs := s.stderr.String()
	if !strings.Contains(logs, `"reason":"redis_not_durable","setting":"appendonly","value":"no"`) || !strings.Contains(logs, `"fix":"appendonly yes and appendfsync always"`) {
		t.Fatalf("no redis_not_durable warning for appendonly:\n%s", logs)
	}
	r := do(t, "GET", s.adminURL+"/readyz", nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"checks":{`) || !strings.Contains(string(r.body), `"details":{"redis_durable":"redis_not_durable: appendonly no`) {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	if mt := do(t, "GET", s.adminURL+"/metrics", nil); !strings.Contains(string(mt.body), `keydelivery_store_not_durable{setting="appendonly"} 1`) {
		t.Fatal("keydelivery_store_not_durable{setting=appendonly} is not 1")
	}
	s.stop(t)

	var out, errb syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), waittest.Timeout(t))
	defer cancel()
	err := run(ctx, m.args(store, "--redis-require-durable"), func(string) string { return "" }, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "redis_not_durable") || !strings.Contains(err.Error(), "appendonly") {
		t.Fatalf("--redis-require-durable on a Redis without persistence: %v", err)
	}
}
