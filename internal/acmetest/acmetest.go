// Package acmetest starts Pebble, Let's Encrypt's test ACME certificate
// authority, for tests: a real RFC 8555 server on free loopback ports, with
// its own HTTPS certificate (from a CA the test trusts), a DNS server of
// its own that resolves every name to 127.0.0.1 (so a dotted name such as
// keys.test.example validates against a listener on loopback), and short
// certificate lifetimes when asked. Its validation authority really
// connects to the challenge ports it is given (TLS-ALPN-01, HTTP-01):
// nothing is faked. Import it from _test.go files only.
//
// The pebble program must be installed (scripts/test.sh installs it with
// go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3). There
// is no skipping: a missing pebble fails the test and says how to install
// it.
package acmetest

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/keydelivery/keydelivery/internal/syncbuf"
	"github.com/keydelivery/keydelivery/internal/tlsserve"
	"github.com/keydelivery/keydelivery/internal/waittest"
)

// Version is the Pebble release the tests are written against.
const Version = "v2.10.3"

// Install is the command that installs it.
const Install = "go install github.com/letsencrypt/pebble/v2/cmd/pebble@" + Version

// Options configures a Pebble.
type Options struct {
	// TLSPort and HTTPPort are where the validation authority connects for
	// TLS-ALPN-01 and HTTP-01 challenges (on 127.0.0.1). Zero: Pebble's
	// defaults, which no test listens on.
	TLSPort, HTTPPort int
	// Validity is the lifetime of the certificates it issues (default 90
	// days).
	Validity time.Duration
}

// Pebble is a running Pebble.
type Pebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// CAFile is a PEM file of the CA of Pebble's own HTTPS certificate: the
	// client's --acme-directory-ca.
	CAFile string
	// CA is that CA, parsed.
	CA *x509.Certificate

	management string
	client     *http.Client
	output     *syncbuf.Buffer
}

// Binary finds pebble: $KD_TEST_PEBBLE, then PATH, then $GOBIN and
// $GOPATH/bin (where go install puts it).
func Binary() (string, error) {
	if p := os.Getenv("KD_TEST_PEBBLE"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("pebble"); err == nil {
		return p, nil
	}
	var dirs []string
	if gobin, err := exec.Command("go", "env", "GOBIN").Output(); err == nil && len(trim(gobin)) > 0 {
		dirs = append(dirs, trim(gobin))
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil && len(trim(gopath)) > 0 {
		for _, d := range filepath.SplitList(trim(gopath)) {
			dirs = append(dirs, filepath.Join(d, "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "pebble")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("pebble (Let's Encrypt's test CA) is not installed; install it with: %s", Install)
}

func trim(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return string(b)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs Pebble for the test and stops it when the test ends.
func Start(t testing.TB, o Options) *Pebble {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca, err := tlsserve.NewCA(rand.Reader, "acmetest Pebble HTTPS CA", time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(rand.Reader, []string{"localhost", "127.0.0.1"}, time.Now(), 24*time.Hour, false)
	if err != nil {
		t.Fatal(err)
	}
	w := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if o.Validity <= 0 {
		o.Validity = 90 * 24 * time.Hour
	}
	if o.TLSPort == 0 {
		o.TLSPort = 5001
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = 5002
	}
	dns := startDNS(t)
	p := &Pebble{CAFile: w("pebble-ca.crt", ca.CertPEM), CA: ca.Cert, output: &syncbuf.Buffer{}}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	p.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: waittest.Timeout(t)}

	for attempt := 0; ; attempt++ {
		api, mgmt := FreePort(t), FreePort(t)
		conf := map[string]any{"pebble": map[string]any{
			"listenAddress":                  "127.0.0.1:" + strconv.Itoa(api),
			"managementListenAddress":        "127.0.0.1:" + strconv.Itoa(mgmt),
			"certificate":                    w("pebble.crt", leaf.CertPEM),
			"privateKey":                     w("pebble.key", leaf.KeyPEM),
			"httpPort":                       o.HTTPPort,
			"tlsPort":                        o.TLSPort,
			"ocspResponderURL":               "",
			"externalAccountBindingRequired": false,
			"retryAfter":                     map[string]int{"authz": 1, "order": 1},
			"keyAlgorithm":                   "ecdsa",
			"profiles": map[string]any{"default": map[string]any{
				"description": "acmetest", "validityPeriod": int(o.Validity / time.Second)}},
		}}
		b, _ := json.Marshal(conf)
		cmd := exec.Command(bin, "-config", w("pebble.json", b), "-dnsserver", dns)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = p.output, p.output
		// No random validation delays, no injected bad nonces, no reuse of
		// valid authorizations: every order is validated for real, quickly.
		cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting %s: %v", bin, err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-done
		})
		p.Directory = fmt.Sprintf("https://127.0.0.1:%d/dir", api)
		p.management = fmt.Sprintf("https://127.0.0.1:%d", mgmt)
		if p.ready(t, done) {
			return p
		}
		if attempt == 3 {
			t.Fatalf("pebble did not start; its output:\n%s", p.output)
		}
	}
}

// ready waits until the directory answers, or the process exits.
func (p *Pebble) ready(t testing.TB, done chan struct{}) bool {
	deadline := waittest.Deadline(t)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return false // a port was taken: try others
		default:
		}
		if resp, err := p.client.Get(p.Directory); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// Roots is the pool of Pebble's issuing root, to verify the certificates
// it issued.
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	resp, err := p.client.Get(p.management + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble root: %s", b)
	}
	return pool
}

// Output is what Pebble printed (its log of orders and validations).
func (p *Pebble) Output() string { return p.output.String() }

// startDNS serves, on a free loopback port, over UDP and TCP, A 127.0.0.1
// for every name and an empty answer for every other question.
func startDNS(t testing.TB) string {
	t.Helper()
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tl, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			if attempt < 5 {
				continue // the TCP port is taken: try another
			}
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close(); tl.Close() })
		go func() {
			buf := make([]byte, 1500)
			for {
				n, addr, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				if msg := answer(buf[:n]); msg != nil {
					pc.WriteTo(msg, addr)
				}
			}
		}()
		go func() {
			for {
				c, err := tl.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(10 * time.Second))
					for {
						var l [2]byte
						if _, err := io.ReadFull(c, l[:]); err != nil {
							return
						}
						q := make([]byte, int(l[0])<<8|int(l[1]))
						if _, err := io.ReadFull(c, q); err != nil {
							return
						}
						msg := answer(q)
						if msg == nil {
							return
						}
						c.Write(append([]byte{byte(len(msg) >> 8), byte(len(msg))}, msg...))
					}
				}()
			}
		}()
		return pc.LocalAddr().String()
	}
}

// answer is the DNS answer to the query q: A 127.0.0.1 for any name,
// nothing for any other type; nil for a query that does not parse.
func answer(q []byte) []byte {
	var parser dnsmessage.Parser
	h, err := parser.Start(q)
	if err != nil {
		return nil
	}
	question, err := parser.Question()
	if err != nil {
		return nil
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired})
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(question)
	_ = b.StartAnswers()
	if question.Type == dnsmessage.TypeA {
		_ = b.AResource(dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}})
	}
	msg, err := b.Finish()
	if err != nil {
		return nil
	}
	return msg
}
