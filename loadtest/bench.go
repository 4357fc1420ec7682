package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keydelivery/keydelivery/auth"
)

// session holds what one invocation started, to stop it at the end.
type session struct {
	cfg     *config
	out     io.Writer // tables and the final report
	log     io.Writer // progress
	tmp     string
	bin     string
	stops   []func()
	redis   map[string]*redisServer // by server name
	getenv  func(string) string
	targets []*target
	rep     *report
}

func (s *session) close() {
	for i := len(s.stops) - 1; i >= 0; i-- {
		s.stops[i]()
	}
	if s.tmp != "" && !s.cfg.KeepTmp {
		os.RemoveAll(s.tmp)
	}
}

func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		return err
	}
	s := &session{cfg: cfg, out: stdout, log: stderr, getenv: getenv, redis: map[string]*redisServer{}}
	s.rep = &report{Tool: "keydelivery loadtest", Started: time.Now().UTC(), Host: currentHost(), Config: cfg.flagsForReport()}
	if s.tmp, err = os.MkdirTemp("", "kd-loadtest-"); err != nil {
		return err
	}
	defer s.close()
	if cfg.KeepTmp {
		fmt.Fprintf(stderr, "temporary directory (kept): %s\n", s.tmp)
	}

	switch cfg.Scenario {
	case "4":
		err = s.keyCountScenario(ctx)
	case "5":
		err = s.importScenario(ctx)
	default:
		err = s.loadScenario(ctx)
	}
	s.rep.Finished = time.Now().UTC()
	if s.rep.Runs != nil || s.rep.Imports != nil {
		printTables(stdout, s.rep)
		if cfg.JSON != "" {
			if jerr := writeJSON(cfg.JSON, s.rep); jerr != nil && err == nil {
				err = jerr
			} else if jerr == nil {
				fmt.Fprintf(stderr, "results written to %s\n", cfg.JSON)
			}
		}
	}
	return err
}

// serverSetup is a keydelivery target with what it takes to mint for it.
type serverSetup struct {
	t          *target
	signingKey string
	cert       string
	issuer     string
	audience   string
	adminURL   string
	adminToken string
}

// startKeydelivery starts one server named name on store.
func (s *session) startKeydelivery(name, store string, flags []string) (*serverSetup, error) {
	cfg := s.cfg
	if s.bin == "" {
		if cfg.ServerBin != "" {
			s.bin = cfg.ServerBin
		} else {
			fmt.Fprintf(s.log, "building ./cmd/keydelivery...\n")
			b, err := buildServer(s.tmp)
			if err != nil {
				return nil, err
			}
			s.bin = b
		}
	}
	o := serverOptions{Bin: s.bin, Flags: flags, Store: store, Name: name, Tmp: s.tmp}
	if store == "redis" {
		r, err := startRedis(s.tmp)
		if err != nil {
			return nil, err
		}
		s.stops = append(s.stops, r.stop)
		s.redis[name] = r
		o.Redis = r
		fmt.Fprintf(s.log, "redis-server for %s on %s\n", name, r.Addr)
	}
	srv, err := startServer(o)
	if err != nil {
		return nil, err
	}
	s.stops = append(s.stops, srv.stop)
	fmt.Fprintf(s.log, "started %s (pid %d, store %s): delivery %s, admin %s, data %s\n", name, srv.PID, store, srv.Delivery, srv.Admin, srv.DataDir)
	tok, err := srv.adminToken()
	if err != nil {
		return nil, err
	}
	ss := &serverSetup{
		t:          &target{Name: name, URL: srv.Delivery, PID: srv.PID, StorePID: redisPID(o.Redis)},
		signingKey: srv.signingKey(), cert: srv.signingCert(), issuer: "keydelivery-dev", audience: "keydelivery",
		adminURL: srv.Admin, adminToken: tok,
	}
	// Explicit flags win over the dev material.
	if cfg.set["signing-key"] {
		ss.signingKey = cfg.SigningKey
	}
	if cfg.set["signing-cert"] {
		ss.cert = cfg.SigningCert
	}
	if cfg.set["issuer"] {
		ss.issuer = cfg.Issuer
	}
	if cfg.set["audience"] {
		ss.audience = cfg.Audience
	}
	return ss, nil
}

// externalServer describes a server someone else started (--url).
func (s *session) externalServer() (*serverSetup, error) {
	cfg := s.cfg
	u, err := checkLoopbackURL("--url", cfg.URL)
	if err != nil {
		return nil, err
	}
	u.Path = ""
	pid := cfg.ServerPID
	if pid == 0 {
		port, _ := strconv.Atoi(u.Port())
		if pid, err = pidListeningOn(port); err != nil {
			return nil, fmt.Errorf("server CPU: %w", err)
		}
		fmt.Fprintf(s.log, "server on port %s is pid %d\n", u.Port(), pid)
	}
	if cfg.SigningKey == "" {
		return nil, errors.New("--signing-key is required with --url (e.g. data/dev-token-signing.key)")
	}
	ss := &serverSetup{
		t:          &target{Name: "keydelivery", URL: u, PID: pid},
		signingKey: cfg.SigningKey, cert: cfg.SigningCert, issuer: cfg.Issuer, audience: cfg.Audience,
		adminURL: cfg.AdminURL,
	}
	return ss, nil
}

// adminTokenFor returns the admin secret: the started server's, else
// --admin-token-file, else KD_ADMIN_TOKEN.
func (s *session) adminTokenFor(ss *serverSetup) (string, error) {
	if s.cfg.AdminTokenFile != "" {
		b, err := os.ReadFile(s.cfg.AdminTokenFile)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	if ss.adminToken != "" {
		return ss.adminToken, nil
	}
	if t := s.getenv("KD_ADMIN_TOKEN"); t != "" {
		return t, nil
	}
	return "", errors.New("--create-keys needs the admin secret: KD_ADMIN_TOKEN or --admin-token-file")
}

// resolveKIDs returns the KIDs of a run: given, read, or created.
func (s *session) resolveKIDs(ctx context.Context, ss *serverSetup, create int) ([]string, error) {
	cfg := s.cfg
	var kids []string
	if len(cfg.KIDs) > 0 {
		k, err := canonicalKIDs(cfg.KIDs)
		if err != nil {
			return nil, fmt.Errorf("--kids: %w", err)
		}
		kids = append(kids, k...)
	}
	if cfg.KIDFile != "" {
		k, err := readKIDFile(cfg.KIDFile)
		if err != nil {
			return nil, fmt.Errorf("--kid-file: %w", err)
		}
		kids = append(kids, k...)
	}
	if create > 0 {
		if ss.adminURL == "" {
			return nil, errors.New("--create-keys needs --admin-url")
		}
		if _, err := checkLoopbackURL("--admin-url", ss.adminURL); err != nil {
			return nil, err
		}
		tok, err := s.adminTokenFor(ss)
		if err != nil {
			return nil, err
		}
		a := newAdminClient(ss.adminURL, tok)
		start := time.Now()
		k, err := a.createKeys(ctx, create, cfg.Batch, s.log)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(s.log, "created %d key(s) on %s in %.1fs\n", create, ss.t.Name, time.Since(start).Seconds())
		kids = append(kids, k...)
	}
	if len(kids) == 0 {
		return nil, errors.New("no KIDs: give --kids, --kid-file or --create-keys N")
	}
	return kids, nil
}

// prepareSource builds the minter and, for shared and pool tokens, the
// request source of a server target.
func (s *session) prepareSource(ss *serverSetup, kids []string) error {
	cfg := s.cfg
	signer, err := auth.LoadSigner(ss.signingKey, ss.cert)
	if err != nil {
		return err
	}
	mode, _ := parseTokenMode(cfg.Tokens)
	dist, _ := parseDistribution(cfg.Dist)
	scope := cfg.Scope
	if scope == "auto" {
		scope = scopeAll
		if len(kids) > maxKIDsPerToken {
			scope = scopeOne
		}
	}
	if scope == scopeAll && len(kids) > maxKIDsPerToken {
		return fmt.Errorf("--scope all with %d KIDs: a token can name at most %d before it passes the server's 8 KiB limit; use --scope one or unbound", len(kids), maxKIDsPerToken)
	}
	ss.t.spec = sourceSpec{kids: kids, path: cfg.Path, mode: mode, scope: scope, dist: dist, maxMint: cfg.MaxMint, seed: cfg.Seed}
	ss.t.minter = &minter{signer: signer, issuer: ss.issuer, audience: ss.audience, ttl: cfg.TokenTTL, now: time.Now}
	if mode.Kind != "fresh" {
		start := time.Now()
		src, err := buildRepeat(ss.t.spec, ss.t.minter)
		if err != nil {
			return err
		}
		ss.t.Source = src
		fmt.Fprintf(s.log, "%s: %s (minted in %.2fs)\n", ss.t.Name, src.describe(), time.Since(start).Seconds())
	}
	return nil
}

// freshCount is how many tokens one window of a fresh-token run can use:
// the window's requests, plus one per connection for the requests still
// in flight when the window closes.
func (s *session) freshCount() int {
	cfg := s.cfg
	headroom := slices.Max(cfg.Concurrency)
	if cfg.Rate > 0 {
		n := int(math.Ceil(cfg.Rate*cfg.Duration.Seconds())) + 1
		if cfg.Requests > 0 && int(cfg.Requests) < n {
			n = int(cfg.Requests)
		}
		return n + headroom
	}
	return int(cfg.Requests) + headroom
}

// startBaselines starts the requested baselines.
func (s *session) startBaselines() error {
	for _, kind := range []string{"bare", "echo", "nginx"} {
		if !s.cfg.wantBaseline(kind) {
			continue
		}
		var t *target
		var err error
		if kind == "nginx" {
			t, err = startNginx(s.cfg.NginxWorkers, s.tmp)
			if err != nil && findNginx() == "" {
				note := "nginx baseline skipped: nginx is not installed (apt-get install -y nginx)"
				fmt.Fprintln(s.log, note)
				s.rep.Notes = append(s.rep.Notes, note)
				continue
			}
		} else {
			t, err = startBaseline(kind)
		}
		if err != nil {
			return err
		}
		s.stops = append(s.stops, t.stop)
		fmt.Fprintf(s.log, "baseline %s on %s (pid %d)\n", t.Name, t.URL, t.PID)
		s.targets = append(s.targets, t)
	}
	return nil
}

func (s *session) recordTargets() {
	for _, t := range s.targets {
		ti := targetInfo{Name: t.Name, URL: t.URL.String(), PID: t.PID, Baseline: t.Base}
		if !t.Base {
			ti.Requests = t.spec.describe()
		}
		s.rep.Targets = append(s.rep.Targets, ti)
	}
}

// loadScenario is the ordinary run: one server, baselines, rounds.
func (s *session) loadScenario(ctx context.Context) error {
	cfg := s.cfg
	var ss *serverSetup
	var err error
	if cfg.StartServer {
		ss, err = s.startKeydelivery("keydelivery", cfg.Stores[0], cfg.ServerFlags)
	} else {
		ss, err = s.externalServer()
	}
	if err != nil {
		return err
	}
	create := cfg.CreateKeys
	if create == 0 && cfg.StartServer && len(cfg.KIDs) == 0 && cfg.KIDFile == "" {
		create = 1 // a fresh server has no keys: make the hot one
	}
	kids, err := s.resolveKIDs(ctx, ss, create)
	if err != nil {
		return err
	}
	if err := s.prepareSource(ss, kids); err != nil {
		return err
	}
	s.targets = append(s.targets, ss.t)
	if err := s.startBaselines(); err != nil {
		return err
	}
	s.recordTargets()
	var baseNames []string
	for _, t := range s.targets[1:] {
		baseNames = append(baseNames, t.Name)
	}
	if err := s.rounds(ctx, []*serverSetup{ss}); err != nil {
		return err
	}
	s.finishRatios(nil, ss.t.Name, baseNames)
	return nil
}

// rounds runs every target at every concurrency, round after round.
func (s *session) rounds(ctx context.Context, servers []*serverSetup) error {
	cfg := s.cfg
	mode, _ := parseTokenMode(cfg.Tokens)
	fmt.Fprintf(s.log, "%d round(s) × %d target(s) × %d concurrency level(s), %s warm-up + %s window each\n",
		cfg.Rounds, len(s.targets), len(cfg.Concurrency), cfg.Warmup, cfg.Duration)
	for round := 1; round <= cfg.Rounds; round++ {
		// Fresh tokens: a new set for every run of the round, so no token
		// is ever sent twice to the server.
		fresh := map[int]*freshSource{}
		if mode.Kind == "fresh" {
			ss := servers[0]
			for _, c := range cfg.Concurrency {
				start := time.Now()
				src, err := buildFresh(ss.t.spec, ss.t.minter, s.freshCount(), round*1000+c)
				if err != nil {
					return err
				}
				fresh[c] = src
				fmt.Fprintf(s.log, "round %d: minted %d fresh tokens for %s at concurrency %d in %.1fs\n", round, len(src.reqs)+len(src.warm), ss.t.Name, c, time.Since(start).Seconds())
			}
		}
		if cfg.VerifyBench {
			ss := servers[0]
			if ss.cert == "" {
				return errors.New("--verify-bench needs --signing-cert (the certificate the server trusts)")
			}
			v, err := verifyBench(ss.t.minter, ss.cert, ss.issuer, ss.audience, 3000, round)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.log, "  round %d es256-verify  %.1fµs/op (in process, %d distinct tokens)\n", round, v.MicrosPerOp, v.Ops)
			s.rep.Verify = append(s.rep.Verify, v)
		}
		for _, t := range s.targets {
			for _, c := range cfg.Concurrency {
				if err := ctx.Err(); err != nil {
					return err
				}
				src := t.Source
				if t.Base {
					src = servers[0].t.Source
				}
				if f := fresh[c]; f != nil {
					src = f
				}
				if t.Base {
					src = baselineSource(src)
				}
				res := drive(runSpec{
					Target: t.Name, BaseURL: t.URL, PID: t.PID, StorePID: t.StorePID, Concurrency: c, Rate: cfg.Rate,
					Warmup: cfg.Warmup, Duration: cfg.Duration, Requests: cfg.Requests, Timeout: cfg.Timeout,
					Source: src, Seed: cfg.Seed + uint64(round), Client: cfg.Client,
				})
				res.Round = round
				printRun(s.log, res)
				s.rep.Runs = append(s.rep.Runs, res)
				// Let connections close and the server settle.
				if err := contextSleep(ctx, 300*time.Millisecond); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// baselineSource gives the baselines the same requests as the server; a
// fresh source wraps around, since a baseline never looks at the token.
func baselineSource(src requestSource) requestSource {
	if f, ok := src.(*freshSource); ok {
		return &freshSource{reqs: f.reqs, warm: f.warm, desc: f.desc, cyclic: true}
	}
	return src
}

func (s *session) finishRatios(pairs [][2]string, target string, bases []string) {
	base := map[string]bool{}
	for _, t := range s.targets {
		base[t.Name] = t.Base
	}
	s.rep.Summary = summarizeRuns(s.rep.Runs, base)
	for _, b := range bases {
		s.rep.Ratios = append(s.rep.Ratios, ratios(s.rep.Runs, target, b)...)
	}
	for _, p := range pairs {
		s.rep.Ratios = append(s.rep.Ratios, ratios(s.rep.Runs, p[0], p[1])...)
	}
	if len(s.rep.Verify) > 0 && target != "" {
		s.rep.Ratios = append(s.rep.Ratios, verifyRatios(s.rep.Runs, s.rep.Verify, target)...)
	}
}

// keyCountScenario (4) starts one server per store and key count, fills
// each with its keys, and alternates the load between them: the ratio of
// the largest count to the smallest shows whether the cost stays flat.
func (s *session) keyCountScenario(ctx context.Context) error {
	cfg := s.cfg
	var servers []*serverSetup
	var pairs [][2]string
	for _, store := range cfg.Stores {
		var names []string
		for _, n := range cfg.KeyCounts {
			name := fmt.Sprintf("kd-%s-%d", store, n)
			ss, err := s.startKeydelivery(name, store, cfg.ServerFlags)
			if err != nil {
				return err
			}
			kids, err := s.resolveKIDs(ctx, ss, n)
			if err != nil {
				return err
			}
			if err := s.prepareSource(ss, kids); err != nil {
				return err
			}
			servers = append(servers, ss)
			s.targets = append(s.targets, ss.t)
			names = append(names, name)
		}
		for _, n := range names[1:] {
			pairs = append(pairs, [2]string{n, names[0]})
		}
	}
	s.recordTargets()
	if err := s.roundsPerServer(ctx, servers); err != nil {
		return err
	}
	s.finishRatios(pairs, "", nil)
	return nil
}

// roundsPerServer is rounds where every target is a server with its own
// requests (scenario 4).
func (s *session) roundsPerServer(ctx context.Context, servers []*serverSetup) error {
	cfg := s.cfg
	mode, _ := parseTokenMode(cfg.Tokens)
	for round := 1; round <= cfg.Rounds; round++ {
		for _, ss := range servers {
			for _, c := range cfg.Concurrency {
				if err := ctx.Err(); err != nil {
					return err
				}
				if mode.Kind == "fresh" {
					src, err := buildFresh(ss.t.spec, ss.t.minter, s.freshCount(), round*1000+c)
					if err != nil {
						return err
					}
					ss.t.Source = src
				}
				res := drive(runSpec{
					Target: ss.t.Name, BaseURL: ss.t.URL, PID: ss.t.PID, StorePID: ss.t.StorePID, Concurrency: c, Rate: cfg.Rate,
					Warmup: cfg.Warmup, Duration: cfg.Duration, Requests: cfg.Requests, Timeout: cfg.Timeout,
					Source: ss.t.Source, Seed: cfg.Seed + uint64(round), Client: cfg.Client,
				})
				res.Round = round
				printRun(s.log, res)
				s.rep.Runs = append(s.rep.Runs, res)
				if err := contextSleep(ctx, 300*time.Millisecond); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// importScenario (5) imports a CPIX document of --import-keys new keys
// into a fresh server per store, round after round, and on Redis runs
// redis-benchmark against the same redis-server in the same rounds.
func (s *session) importScenario(ctx context.Context) error {
	cfg := s.cfg
	type srv struct {
		store string
		ss    *serverSetup
		admin *adminClient
	}
	var servers []srv
	for _, store := range cfg.Stores {
		name := "kd-" + store
		ss, err := s.startKeydelivery(name, store, cfg.ServerFlags)
		if err != nil {
			return err
		}
		s.targets = append(s.targets, ss.t)
		servers = append(servers, srv{store: store, ss: ss, admin: newAdminClient(ss.adminURL, ss.adminToken)})
	}
	s.recordTargets()
	for round := 1; round <= cfg.Rounds; round++ {
		for _, sv := range servers {
			if err := ctx.Err(); err != nil {
				return err
			}
			if r := s.redis[sv.ss.t.Name]; r != nil {
				rb, err := redisBenchmark(ctx, r.Addr, cfg.RedisBenchN)
				if err != nil {
					return err
				}
				rb.Round = round
				s.rep.RedisSET = append(s.rep.RedisSET, rb)
				fmt.Fprintf(s.log, "  round %d redis-benchmark SET -P 16: %.0f/s\n", round, rb.RequestsPerSecond)
			}
			im, err := importBench(ctx, sv.admin, sv.ss.t.PID, sv.ss.t.StorePID, cfg.ImportKeys)
			if err != nil {
				return fmt.Errorf("%s: %w", sv.ss.t.Name, err)
			}
			im.Store, im.Round = sv.store, round
			s.rep.Imports = append(s.rep.Imports, im)
			fmt.Fprintf(s.log, "  round %d import into %s: %d keys (%d bytes of CPIX) in %.2fs = %.0f keys/s, server CPU %.2fs, redis CPU %.2fs\n",
				round, sv.store, im.Keys, im.Bytes, im.Seconds, im.KeysPerSecond, im.ServerCPU, im.StoreCPU)
		}
	}
	// Ratio: Redis import rate over the SET rate of the same round.
	var rs []float64
	for _, im := range s.rep.Imports {
		if im.Store != "redis" {
			continue
		}
		for _, rb := range s.rep.RedisSET {
			if rb.Round == im.Round {
				rs = append(rs, div(im.KeysPerSecond, rb.RequestsPerSecond))
			}
		}
	}
	if len(rs) > 0 {
		s.rep.Ratios = append(s.rep.Ratios, ratioRow{Target: "import-redis", Baseline: "redis-benchmark-set-P16", Rounds: len(rs), Throughput: median(rs)})
	}
	return nil
}

func redisPID(r *redisServer) int {
	if r == nil {
		return 0
	}
	return r.PID
}
