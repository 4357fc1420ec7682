package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/auth"
	"github.com/keydelivery/keydelivery/internal/redistest"
)

// sample returns the value of the series whose name and labels match the
// pattern (a regular expression over the exposition line without value).
func sample(t *testing.T, body []byte, series string) (float64, bool) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + series + ` ([0-9.e+-]+)$`)
	m := re.FindSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

// TestMetricsAfterTraffic drives real traffic through the server (on Redis,
// so every metric family exists), scrapes /metrics, checks that the series
// moved, and that promtool accepts the exposition.
func TestMetricsAfterTraffic(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install it with `apt-get install prometheus` (scripts/test.sh does this when run as root)")
	}
	rs := redistest.Start(t, redistest.Options{})
	m := newMaterial(t)
	s := start(t, m.args("redis://"+rs.Addr+"/0", "--key-cache-ttl", "1m", "--store-adopt"), nil)
	value := randomKey(t)
	kid := s.createKey(t, value, nil)
	tok := m.token(t, kid)
	for range 3 {
		if a := do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(tok)); a.status != 200 {
			t.Fatalf("fetch: %d", a.status)
		}
	}
	now := time.Now()
	expired, _ := m.signer.Sign(auth.TokenClaims{Issuer: testIssuer, Audience: testAudience, KeyIDs: []string{kid},
		IssuedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour)})
	do(t, "GET", s.deliveryURL+"/keys/"+kid, bearer(expired))
	do(t, "GET", s.deliveryURL+"/keys/not-a-kid", bearer(tok))

	scrape := do(t, "GET", s.adminURL+"/metrics", nil)
	if scrape.status != 200 {
		t.Fatalf("/metrics: %d", scrape.status)
	}
	body := scrape.body
	atLeast := map[string]float64{
		`keydelivery_http_requests_total\{class="2xx",plane="delivery",route="/keys/:kid"\}`:                 3,
		`keydelivery_http_requests_total\{class="4xx",plane="delivery",route="/keys/:kid"\}`:                 2,
		`keydelivery_http_requests_total\{class="2xx",plane="admin",route="/api/keys"\}`:                     1,
		`keydelivery_http_request_duration_seconds_count\{class="2xx",plane="delivery",route="/keys/:kid"\}`: 3,
		`keydelivery_token_verifications_total\{result="ok"\}`:                                               4,
		`keydelivery_token_verifications_total\{result="expired"\}`:                                          1,
		`keydelivery_token_verification_duration_seconds_count`:                                              2,
		`keydelivery_keys_delivered_total\{type="envelope"\}`:                                                3,
		`keydelivery_token_cache_hits_total`:                                                                 3,
		`keydelivery_token_cache_misses_total`:                                                               2,
		`keydelivery_key_cache_hits_total`:                                                                   2,
		`keydelivery_key_cache_misses_total`:                                                                 1,
		`keydelivery_store_operations_total\{backend="redis",operation="get",result="ok"\}`:                  1,
		`keydelivery_store_operations_total\{backend="redis",operation="create",result="ok"\}`:               1,
		`keydelivery_store_operation_duration_seconds_count\{backend="redis",operation="get"\}`:              1,
		`keydelivery_admin_operations_total\{operation="keys.create",result="ok"\}`:                          1,
		`keydelivery_redis_pool_connections\{state="total"\}`:                                                1,
		`keydelivery_build_info\{commit="[^"]*",goversion="go[^"]*",version="[^"]*"\}`:                       1,
	}
	for series, min := range atLeast {
		v, ok := sample(t, body, series)
		if !ok || v < min {
			t.Errorf("%s = %v (present %v), want at least %v", series, v, ok, min)
		}
	}
	// Only full verifications are timed: one per cache miss, none per hit.
	timed, _ := sample(t, body, `keydelivery_token_verification_duration_seconds_count`)
	if misses, _ := sample(t, body, `keydelivery_token_cache_misses_total`); timed != misses {
		t.Errorf("timed verifications %v, want one per token cache miss (%v)", timed, misses)
	}
	if v, ok := sample(t, body, `keydelivery_audit_write_failures_total`); !ok || v != 0 {
		t.Errorf("audit write failures = %v, %v", v, ok)
	}
	// The token certificate's NotAfter, as a Unix time, per thumbprint.
	certs, err := auth.LoadCertificates([]string{m.certFile})
	if err != nil {
		t.Fatal(err)
	}
	series := fmt.Sprintf(`keydelivery_token_certificate_not_after_seconds\{subject="%s",thumbprint="%s"\}`, regexp.QuoteMeta(certs[0].Subject), regexp.QuoteMeta(certs[0].X5T()))
	if v, ok := sample(t, body, series); !ok || int64(v) != certs[0].NotAfter.Unix() {
		t.Errorf("certificate NotAfter gauge %v (present %v), want %d", v, ok, certs[0].NotAfter.Unix())
	}
	// Labels are bounded: no KID and no token in any label.
	if bytes.Contains(body, []byte(kid)) || bytes.Contains(body, []byte(strings.Split(tok, ".")[1])) {
		t.Error("a KID or a token reached a metric label")
	}
	// promtool's linter accepts the exposition.
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
