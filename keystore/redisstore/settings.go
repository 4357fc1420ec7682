package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// The settings CheckDurability reads, as Finding.Setting names them.
const (
	SettingAppendOnly       = "appendonly"
	SettingAppendFsync      = "appendfsync"
	SettingMaxmemoryPolicy  = "maxmemory-policy"
	SettingReplicas         = "connected_slaves"
	SettingMinReplicasWrite = "min-replicas-to-write"
)

// Settings lists every setting a Finding may name, for metrics.
var Settings = []string{SettingAppendOnly, SettingAppendFsync, SettingMaxmemoryPolicy, SettingReplicas, SettingMinReplicasWrite}

// Finding is one Redis setting that can lose an acknowledged key, on one
// master.
type Finding struct {
	// Node is the master's address; "" for the one master of a single
	// server or of a Sentinel setup.
	Node string
	// Setting is one of Settings; Value what the master has.
	Setting, Value string
	// Risk says what can be lost; Fix what to set.
	Risk, Fix string
}

func (f Finding) String() string {
	node := ""
	if f.Node != "" {
		node = " on " + f.Node
	}
	return fmt.Sprintf("%s %s%s: %s; fix: %s", f.Setting, f.Value, node, f.Risk, f.Fix)
}

// DurabilityReport is what CheckDurability found.
type DurabilityReport struct {
	// Masters is how many masters were checked.
	Masters int
	// Findings are the settings that can lose an acknowledged key.
	Findings []Finding
	// Denied names the commands the ACL user may not run ("CONFIG GET",
	// "INFO"), whose settings were not checked.
	Denied []string
	// Version is the lowest redis_version among the masters ("" when INFO
	// was denied).
	Version string
}

// CheckDurability reads, on every master, the settings that decide whether
// an acknowledged key survives: appendonly, appendfsync, maxmemory-policy,
// min-replicas-to-write (CONFIG GET) and the replicas connected (INFO
// replication), and reports each that can lose one, given how this store
// waits for replicas:
//
//   - maxmemory-policy other than noeviction: keys are evicted when Redis
//     is full, and then look missing.
//   - appendonly no: a restart loses what was written since the last
//     snapshot, everything without one; and replicas resync from the
//     restarted master, losing it too.
//   - appendfsync other than always, without WaitAOF: a crash loses the
//     last second of writes, replicas resyncing from the master as above.
//   - no replica connected behind Sentinel or in a Cluster: a failover has
//     nothing to promote (a lost master is lost data).
//   - replicas connected but writes not waiting for one
//     (WaitReplicas 0): a failover loses the writes not yet replicated;
//     reported as min-replicas-to-write, the Redis-side alternative.
//
// A command the ACL user may not run is reported in Denied, and its
// settings are not checked; an unreachable master is an error.
func (s *Store) CheckDurability(ctx context.Context) (DurabilityReport, error) {
	var rep DurabilityReport
	var nodes []node
	if s.cluster == nil {
		nodes = []node{{client: s.single}}
	} else {
		var mu sync.Mutex
		err := s.cluster.ForEachMaster(ctx, func(_ context.Context, c *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			nodes = append(nodes, node{client: c, addr: c.Options().Addr})
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("redisstore: check settings: %w", translate(err))
		}
		slices.SortFunc(nodes, func(a, b node) int { return strings.Compare(a.addr, b.addr) })
	}
	rep.Masters = len(nodes)
	denied := map[string]bool{}
	for _, n := range nodes {
		fs, den, version, err := s.checkNode(ctx, n)
		if err != nil {
			return rep, err
		}
		rep.Findings = append(rep.Findings, fs...)
		for _, d := range den {
			denied[d] = true
		}
		if version != "" && (rep.Version == "" || versionLess(version, rep.Version)) {
			rep.Version = version
		}
	}
	for _, d := range []string{"CONFIG GET", "INFO"} {
		if denied[d] {
			rep.Denied = append(rep.Denied, d)
		}
	}
	return rep, nil
}

// checkNode checks one master; see CheckDurability.
func (s *Store) checkNode(ctx context.Context, n node) (fs []Finding, denied []string, version string, err error) {
	names := []string{SettingAppendOnly, SettingAppendFsync, SettingMaxmemoryPolicy, SettingMinReplicasWrite}
	gets := make([]*redis.MapStringStringCmd, len(names))
	var info, server *redis.StringCmd
	_, _ = n.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, name := range names {
			gets[i] = p.ConfigGet(ctx, name)
		}
		info = p.Info(ctx, "replication")
		server = p.Info(ctx, "server")
		return nil
	})
	conf := map[string]string{}
	for i, g := range gets {
		v, err := g.Result()
		switch {
		case isNoPerm(err):
			if !slices.Contains(denied, "CONFIG GET") {
				denied = append(denied, "CONFIG GET")
			}
			continue
		case err != nil:
			return nil, nil, "", fmt.Errorf("redisstore: check settings on %s: %w", nodeName(n), translate(err))
		}
		conf[names[i]] = v[names[i]]
	}
	replicas := -1
	if txt, err := info.Result(); isNoPerm(err) {
		denied = append(denied, "INFO")
	} else if err != nil {
		return nil, nil, "", fmt.Errorf("redisstore: check settings on %s: %w", nodeName(n), translate(err))
	} else if v, ok := infoField(txt, "connected_slaves"); ok {
		replicas, _ = strconv.Atoi(v)
		if txt, err := server.Result(); err == nil {
			version, _ = infoField(txt, "redis_version")
		}
	}
	add := func(setting, value, risk, fix string) {
		fs = append(fs, Finding{Node: n.addr, Setting: setting, Value: value, Risk: risk, Fix: fix})
	}
	if v, ok := conf[SettingMaxmemoryPolicy]; ok && v != "noeviction" {
		add(SettingMaxmemoryPolicy, v, "Redis evicts keys when it is full, and an evicted key is reported missing (404)", "maxmemory-policy noeviction")
	}
	switch aof, fsync := conf[SettingAppendOnly], conf[SettingAppendFsync]; {
	case aof == "no":
		add(SettingAppendOnly, aof, "a restart of this master loses the keys written since its last snapshot (all of them without snapshots), and its replicas resync from it and lose them too", "appendonly yes and appendfsync always")
	case aof == "yes" && fsync != "" && fsync != "always" && !s.waitAOF:
		add(SettingAppendFsync, fsync, "a crash of this master loses up to the last second of acknowledged keys, and its replicas resync from it", "appendfsync always (or --redis-wait-aof on Redis 7.2 or later)")
	}
	want := -1
	if replicas >= 0 {
		want = s.waitReplicas
		if s.waitAuto {
			want = replicas
		}
	}
	switch {
	case replicas == 0 && s.mode != standalone:
		add(SettingReplicas, "0", "no replica is connected: a failover of this master has nothing to promote, and losing it loses its keys", "attach a replica (replicaof), or bring the lost one back")
	case replicas > 0 && want == 0:
		add(SettingMinReplicasWrite, conf[SettingMinReplicasWrite], fmt.Sprintf("%d replicas are connected but writes are acknowledged before any holds them: a failover loses the last writes", replicas), "--redis-wait-replicas auto (the default) or 1")
	}
	return fs, denied, version, nil
}

func nodeName(n node) string {
	if n.addr == "" {
		return "the master"
	}
	return n.addr
}

// isNoPerm reports whether err is the ACL refusing a command.
func isNoPerm(err error) bool { return err != nil && redis.HasErrorPrefix(err, "NOPERM") }

// versionLess compares dotted version numbers ("7.0.15" < "7.2.0").
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// ErrWaitAOFUnsupported: WaitAOF is set but a master is older than Redis
// 7.2, which has no WAITAOF.
var ErrWaitAOFUnsupported = errors.New("redisstore: --redis-wait-aof needs Redis 7.2 or later (WAITAOF)")

// CheckWaitAOF returns ErrWaitAOFUnsupported when WaitAOF is set and the
// report shows a master older than 7.2; nil otherwise (also when the
// version could not be read).
func (s *Store) CheckWaitAOF(rep DurabilityReport) error {
	if s.waitAOF && rep.Version != "" && versionLess(rep.Version, "7.2") {
		return fmt.Errorf("%w: a master runs %s", ErrWaitAOFUnsupported, rep.Version)
	}
	return nil
}
