package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/keystore"
	"github.com/keydelivery/keydelivery/keystore/redisstore"
	"github.com/keydelivery/keydelivery/metrics"
)

// Durability (issue 11): the store marker checked at startup and every
// --store-check-interval (store_lost), and on Redis the settings that can
// lose an acknowledged key (redis_not_durable).

// Log reasons.
const (
	reasonStoreLost     = "store_lost"
	reasonNotDurable    = "redis_not_durable"
	notDurableRelogEach = time.Hour
)

// durability is what the durability checks found, for readiness, metrics
// and the log.
type durability struct {
	lost       prometheus.Gauge
	notDurable *prometheus.GaugeVec

	mu        sync.Mutex
	report    *redisstore.DurabilityReport // nil: not checked (yet), or not Redis
	checkErr  error                        // the last settings check that failed
	logged    string                       // the findings last logged
	loggedAt  time.Time
	deniedLog bool // the ACL refusal was logged
	isLost    bool // the last check found the store lost
}

func newDurability(reg prometheus.Registerer) *durability {
	d := &durability{
		lost: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "store", Name: "lost",
			Help: "1 while the key store is found to have lost its data (its marker gone, or empty where it held keys): readiness fails with store_lost until an operator adopts it.",
		}),
		notDurable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Subsystem: "store", Name: "not_durable",
			Help: "Redis masters whose setting can lose an acknowledged key (redis_not_durable), by setting.",
		}, []string{"setting"}),
	}
	reg.MustRegister(d.lost, d.notDurable)
	for _, st := range redisstore.Settings {
		d.notDurable.WithLabelValues(st)
	}
	return d
}

// isNewBoltStore reports whether the store is a bbolt file that does not
// exist yet: a new store, which the server adopts without being told (a
// lost bbolt file is a lost disk, which the operator sees).
func isNewBoltStore(cfg *config) bool {
	path, ok := strings.CutPrefix(cfg.storeSpec(), "bolt:")
	if !ok {
		return false
	}
	_, err := os.Stat(path)
	return errors.Is(err, fs.ErrNotExist)
}

// openKeys checks the store before the server uses it (keystore.Keys.Open):
// the store marker, then the KEKs. A store found lost (or, on Redis, empty
// at the first start) is logged as critical and leaves the server running
// but unready, so that an operator can adopt it (kdctl store adopt); no KEK
// check value is written into it. On Redis it then moves the old index
// into the shards and checks the settings: a setting that can lose a key
// is logged, and refuses the start with --redis-require-durable; WAITAOF on
// a Redis older than 7.2 refuses it too.
func (s *app) openKeys(ctx context.Context, newBolt bool) error {
	cfg := s.cfg
	s.durable = newDurability(s.m.reg)
	adopt := cfg.StoreAdopt || cfg.Dev || newBolt
	err := s.keys.Open(ctx, keystore.OpenOptions{Adopt: adopt})
	// A store that does not answer at once (Redis loading, a failover
	// under way) is asked again until the start-up time is up.
	for errors.Is(err, keystore.ErrUnavailable) && ctx.Err() == nil {
		s.log.Warn("the store does not answer yet; trying again", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
			err = s.keys.Open(ctx, keystore.OpenOptions{Adopt: adopt})
		}
	}
	var lost *keystore.StoreLostError
	switch {
	case errors.As(err, &lost):
		s.storeLost(lost)
	case err != nil:
		return err
	case cfg.StoreAdopt:
		s.log.Warn("--store-adopt: the store was taken as it is; remove the flag for the next start", "store_id", s.keys.StoreID())
	}
	rs, ok := s.store.(*redisstore.Store)
	if !ok {
		return nil
	}
	if n, err := rs.MigrateIndex(ctx); err != nil {
		s.log.Warn("moving the old Redis index into its shards failed; will retry", "err", err)
	} else if n > 0 {
		s.log.Info("moved the old Redis index into its shards", "entries", n)
	}
	rep, err := rs.CheckDurability(ctx)
	if err != nil {
		return fmt.Errorf("checking the Redis settings: %w", err)
	}
	if err := rs.CheckWaitAOF(rep); err != nil {
		return err
	}
	s.durabilityReport(&rep)
	if cfg.RedisRequireDurable && len(rep.Findings) > 0 {
		return fmt.Errorf("--redis-require-durable: %s: %s", reasonNotDurable, findingsText(rep.Findings))
	}
	return nil
}

// storeLost logs a lost store as critical and sets the gauge.
func (s *app) storeLost(err *keystore.StoreLostError) {
	s.durable.mu.Lock()
	s.durable.isLost = true
	s.durable.mu.Unlock()
	s.durable.lost.Set(1)
	s.log.Error("the key store lost its data: readiness fails and nothing is written into it until it is restored or adopted (kdctl store adopt)",
		"severity", "critical", "reason", reasonStoreLost, "detail", err.Why)
}

// durabilityReport records a settings check: the gauge, and a warning per
// finding when they changed (or every notDurableRelogEach while they
// last), and once that the ACL denies the check.
func (s *app) durabilityReport(rep *redisstore.DurabilityReport) {
	d := s.durable
	d.mu.Lock()
	defer d.mu.Unlock()
	d.report, d.checkErr = rep, nil
	counts := map[string]int{}
	for _, f := range rep.Findings {
		counts[f.Setting]++
	}
	for _, st := range redisstore.Settings {
		d.notDurable.WithLabelValues(st).Set(float64(counts[st]))
	}
	if len(rep.Denied) > 0 && !d.deniedLog {
		d.deniedLog = true
		s.log.Warn("the Redis ACL user may not read the settings, which are therefore not checked; grant it to have them checked",
			"denied", strings.Join(rep.Denied, ", "), "grant", "+config|get +info")
	}
	text := findingsText(rep.Findings)
	if text == d.logged && time.Since(d.loggedAt) < notDurableRelogEach {
		return
	}
	d.logged, d.loggedAt = text, time.Now()
	for _, f := range rep.Findings {
		s.log.Warn("a Redis setting can lose acknowledged keys", "reason", reasonNotDurable, "setting", f.Setting,
			"value", f.Value, "node", f.Node, "risk", f.Risk, "fix", f.Fix)
	}
	if text == "" && rep.Masters > 0 {
		s.log.Info("Redis settings checked: nothing found that can lose an acknowledged key", "masters", rep.Masters)
	}
}

func findingsText(fs []redisstore.Finding) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = f.String()
	}
	return strings.Join(parts, "; ")
}

// watchStore checks, every --store-check-interval until ctx ends, the
// store marker (a store that lost its data: critical log, gauge, readiness
// refused) and, on Redis, the settings and the old index.
func (s *app) watchStore(ctx context.Context) {
	t := time.NewTicker(s.cfg.StoreCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.checkStoreOnce(ctx)
	}
}

func (s *app) checkStoreOnce(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var lost *keystore.StoreLostError
	switch err := s.keys.CheckStore(cctx); {
	case errors.As(err, &lost):
		s.storeLost(lost)
	case err != nil:
		s.log.Warn("checking the store marker failed; will retry", "err", err)
	default:
		s.durable.mu.Lock()
		wasLost := s.durable.isLost
		s.durable.isLost = false
		s.durable.mu.Unlock()
		if wasLost {
			s.log.Info("the key store holds its data again", "store_id", s.keys.StoreID())
		}
		s.durable.lost.Set(0)
	}
	rs, ok := s.store.(*redisstore.Store)
	if !ok {
		return
	}
	if _, err := rs.MigrateIndex(cctx); err != nil {
		s.log.Warn("moving the old Redis index into its shards failed; will retry", "err", err)
	}
	rep, err := rs.CheckDurability(cctx)
	if err != nil {
		s.durable.mu.Lock()
		s.durable.checkErr = err
		s.durable.mu.Unlock()
		s.log.Warn("checking the Redis settings failed; will retry", "err", err)
		return
	}
	s.durabilityReport(&rep)
}

// durabilityChecks are the readiness checks of the durability work:
// store_data fails while the store is found lost; redis_durable shows the
// Redis settings that can lose a key in the answer's details, and fails
// only with --redis-require-durable.
func (s *app) durabilityChecks() []plane.Check {
	checks := []plane.Check{{Name: "store_data", Check: func(context.Context) error {
		if err := s.keys.Lost(); err != nil {
			var lost *keystore.StoreLostError
			if errors.As(err, &lost) {
				return fmt.Errorf("%s: %s", reasonStoreLost, lost.Why)
			}
			return err
		}
		return nil
	}}}
	if _, ok := s.store.(*redisstore.Store); ok {
		checks = append(checks, plane.Check{Name: "redis_durable",
			Check: func(context.Context) error {
				if d := s.durabilityDetail(); d != "" && s.cfg.RedisRequireDurable {
					return errors.New(d)
				}
				return nil
			},
			Detail: s.durabilityDetail,
		})
	}
	return checks
}

// durabilityDetail is what the last settings check found that can lose a
// key ("" when nothing).
func (s *app) durabilityDetail() string {
	d := s.durable
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.checkErr != nil:
		return "the settings could not be checked: " + d.checkErr.Error()
	case d.report == nil:
		return "not checked yet"
	case len(d.report.Findings) > 0:
		return reasonNotDurable + ": " + findingsText(d.report.Findings)
	case len(d.report.Denied) > 0:
		return "not checked: the ACL user may not run " + strings.Join(slices.Clone(d.report.Denied), ", ")
	}
	return ""
}
