package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keydelivery/keydelivery/internal/waittest"
)

// Do sends one command to the Redis server at addr (after AUTH when
// password is set) and returns its reply: a string for a simple or bulk
// string, an int64, a []any for an array, nil for a nil reply, and an
// error for an error reply or a connection that fails. timeout bounds the
// whole exchange.
func Do(addr, password string, timeout time.Duration, args ...string) (any, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	r := bufio.NewReader(c)
	if password != "" {
		if _, err := roundTrip(c, r, "AUTH", password); err != nil {
			return nil, err
		}
	}
	return roundTrip(c, r, args...)
}

func roundTrip(c net.Conn, r *bufio.Reader, args ...string) (any, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return nil, err
	}
	return readReply(r)
}

// ReplyError is an error reply from Redis.
type ReplyError string

func (e ReplyError) Error() string { return string(e) }

func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, errors.New("redistest: empty reply line")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, ReplyError(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, n)
		for i := range out {
			if out[i], err = readReply(r); err != nil {
				var re ReplyError
				if !errors.As(err, &re) {
					return nil, err
				}
				out[i] = err
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("redistest: unexpected reply %q", line)
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Do sends one command to s; see the package-level Do. Its deadline only
// catches a hang.
func (s *Server) Do(t testing.TB, args ...string) (any, error) {
	return Do(s.Addr, s.opts.Password, waittest.Timeout(t), args...)
}

// MustDo is Do failing t on an error.
func (s *Server) MustDo(t testing.TB, args ...string) any {
	t.Helper()
	v, err := s.Do(t, args...)
	if err != nil {
		t.Fatalf("redistest: %s on %s: %v", strings.Join(args, " "), s.Addr, err)
	}
	return v
}

// Info returns one field of INFO section on s ("" when absent or s does
// not answer).
func (s *Server) Info(t testing.TB, section, field string) string {
	v, err := s.Do(t, "INFO", section)
	if err != nil {
		return ""
	}
	txt, _ := v.(string)
	for line := range strings.Lines(txt) {
		if val, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return val
		}
	}
	return ""
}

// ClusterInfo returns one field of CLUSTER INFO on s ("" when absent or s
// does not answer).
func (s *Server) ClusterInfo(t testing.TB, field string) string {
	v, err := s.Do(t, "CLUSTER", "INFO")
	if err != nil {
		return ""
	}
	txt, _ := v.(string)
	for line := range strings.Lines(txt) {
		if val, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return val
		}
	}
	return ""
}

// Sentinel is a master, its replicas and the Sentinels that watch them,
// all on loopback.
type Sentinel struct {
	Name      string
	Master    *Server // the first master; after a failover, see Masters
	Replicas  []*Server
	Sentinels []*Server
}

// SentinelOptions configures StartSentinel.
type SentinelOptions struct {
	Replicas, Sentinels int
	// DownAfter is the Sentinels' down-after-milliseconds (default 1s).
	DownAfter time.Duration
}

// StartSentinel starts a persistent master, o.Replicas replicas of it
// (persistent too) and o.Sentinels Sentinels with quorum a majority, and
// waits until every replica is in sync and every Sentinel sees them all.
func StartSentinel(t testing.TB, o SentinelOptions) *Sentinel {
	t.Helper()
	if o.DownAfter == 0 {
		o.DownAfter = time.Second
	}
	s := &Sentinel{Name: "kdmaster"}
	s.Master = Start(t, Options{Persistence: true})
	host, port, _ := net.SplitHostPort(s.Master.Addr)
	for range o.Replicas {
		s.Replicas = append(s.Replicas, Start(t, Options{Persistence: true, ExtraArgs: []string{"--replicaof", host, port}}))
	}
	waittest.For(t, "the replicas to be in sync", func() bool {
		return onlineReplicas(t, s.Master) == o.Replicas
	})
	quorum := o.Sentinels/2 + 1
	ms := strconv.Itoa(int(o.DownAfter / time.Millisecond))
	for range o.Sentinels {
		s.Sentinels = append(s.Sentinels, Start(t, Options{ExtraArgs: []string{
			"--sentinel", "monitor", s.Name, host, port, strconv.Itoa(quorum),
			"--sentinel", "down-after-milliseconds", s.Name, ms,
			"--sentinel", "failover-timeout", s.Name, "5000",
			"--sentinel", "parallel-syncs", s.Name, "2",
		}}))
	}
	waittest.For(t, "the Sentinels to see every replica and each other", func() bool {
		for _, sn := range s.Sentinels {
			v, err := sn.Do(t, "SENTINEL", "MASTER", s.Name)
			if err != nil {
				return false
			}
			f := fields(v)
			if f["num-slaves"] != strconv.Itoa(o.Replicas) || f["num-other-sentinels"] != strconv.Itoa(o.Sentinels-1) {
				return false
			}
		}
		return true
	})
	return s
}

// onlineReplicas counts the replicas of m in state online (in sync).
func onlineReplicas(t testing.TB, m *Server) int {
	n := 0
	for i := 0; ; i++ {
		v := m.Info(t, "replication", "slave"+strconv.Itoa(i))
		if v == "" {
			return n
		}
		if strings.Contains(v, "state=online") {
			n++
		}
	}
}

// fields turns a flat array of name, value pairs into a map.
func fields(v any) map[string]string {
	out := map[string]string{}
	arr, _ := v.([]any)
	for i := 0; i+1 < len(arr); i += 2 {
		k, _ := arr[i].(string)
		val, _ := arr[i+1].(string)
		out[k] = val
	}
	return out
}

// URL is the store URL of the set: redis+sentinel://s1,s2,s3/NAME.
func (s *Sentinel) URL() string {
	addrs := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		addrs[i] = sn.Addr
	}
	return "redis+sentinel://" + strings.Join(addrs, ",") + "/" + s.Name
}

// MasterAddr is the master's address as the first Sentinel that answers
// knows it ("" when none answers).
func (s *Sentinel) MasterAddr(t testing.TB) string {
	for _, sn := range s.Sentinels {
		v, err := sn.Do(t, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.Name)
		if arr, ok := v.([]any); err == nil && ok && len(arr) == 2 {
			h, _ := arr[0].(string)
			p, _ := arr[1].(string)
			return net.JoinHostPort(h, p)
		}
	}
	return ""
}

// Servers returns the master and the replicas (the data nodes).
func (s *Sentinel) Servers() []*Server { return append([]*Server{s.Master}, s.Replicas...) }

// ServerAt returns the data node at addr, or nil.
func (s *Sentinel) ServerAt(addr string) *Server {
	for _, n := range s.Servers() {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// Cluster is a Redis Cluster of masters, each with its replicas, on
// loopback.
type Cluster struct {
	Nodes []*Server // the masters first, then the replicas
	ids   map[*Server]string
}

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	Masters, ReplicasPerMaster int
	// NodeTimeout is cluster-node-timeout (default 1s): how soon a master
	// that does not answer is failed over.
	NodeTimeout time.Duration
}

// StartCluster starts o.Masters persistent masters, splitting the 16,384
// slots between them in ranges, and o.ReplicasPerMaster replicas of each,
// and waits until every node reports cluster_state:ok and every replica
// is in sync.
func StartCluster(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	if o.NodeTimeout == 0 {
		o.NodeTimeout = time.Second
	}
	c := &Cluster{ids: map[*Server]string{}}
	args := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.Itoa(int(o.NodeTimeout / time.Millisecond)),
		"--cluster-require-full-coverage", "no",
		// A replica fails its master over however long ago it last heard
		// from it (a busy machine delays the replication pings).
		"--cluster-replica-validity-factor", "0"}
	n := o.Masters * (1 + o.ReplicasPerMaster)
	for range n {
		s := Start(t, Options{Persistence: true, ExtraArgs: args})
		c.Nodes = append(c.Nodes, s)
		id, _ := s.MustDo(t, "CLUSTER", "MYID").(string)
		c.ids[s] = id
	}
	const slots = 16384
	for i := range o.Masters {
		lo, hi := i*slots/o.Masters, (i+1)*slots/o.Masters-1
		c.Nodes[i].MustDo(t, "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi))
	}
	for _, s := range c.Nodes[1:] {
		host, port, _ := net.SplitHostPort(s.Addr)
		c.Nodes[0].MustDo(t, "CLUSTER", "MEET", host, port)
	}
	waittest.For(t, "every node to know every other", func() bool {
		for _, s := range c.Nodes {
			v, err := s.Do(t, "CLUSTER", "NODES")
			txt, _ := v.(string)
			if err != nil || strings.Count(strings.TrimSpace(txt), "\n")+1 != n || strings.Contains(txt, "handshake") {
				return false
			}
		}
		return true
	})
	for i, s := range c.Nodes[o.Masters:] {
		master := c.Nodes[i%o.Masters]
		waittest.For(t, "a replica to attach", func() bool {
			_, err := s.Do(t, "CLUSTER", "REPLICATE", c.ids[master])
			return err == nil
		})
	}
	waittest.For(t, "cluster_state:ok on every node, replicas in sync", func() bool {
		for _, s := range c.Nodes {
			if s.ClusterInfo(t, "cluster_state") != "ok" {
				return false
			}
		}
		for _, m := range c.Nodes[:o.Masters] {
			if onlineReplicas(t, m) != o.ReplicasPerMaster {
				return false
			}
		}
		return true
	})
	return c
}

// URL is the store URL: redis+cluster:// and every node.
func (c *Cluster) URL() string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr
	}
	return "redis+cluster://" + strings.Join(addrs, ",")
}

// ID is the node ID of s.
func (c *Cluster) ID(s *Server) string { return c.ids[s] }

// MasterOf returns the node that serves slot as a master, as the
// running node asked first sees it; nil when none answers.
func (c *Cluster) MasterOf(t testing.TB, slot int) *Server {
	for _, s := range c.Nodes {
		if !s.Running() {
			continue
		}
		v, err := s.Do(t, "CLUSTER", "SLOTS")
		arr, ok := v.([]any)
		if err != nil || !ok {
			continue
		}
		for _, r := range arr {
			rng, _ := r.([]any)
			if len(rng) < 3 {
				continue
			}
			lo, _ := rng[0].(int64)
			hi, _ := rng[1].(int64)
			if int64(slot) < lo || int64(slot) > hi {
				continue
			}
			node, _ := rng[2].([]any)
			if len(node) < 2 {
				continue
			}
			h, _ := node[0].(string)
			p, _ := node[1].(int64)
			addr := net.JoinHostPort(h, strconv.FormatInt(p, 10))
			for _, n := range c.Nodes {
				if n.Addr == addr {
					return n
				}
			}
		}
		return nil
	}
	return nil
}

// ServesAsMaster reports whether s, asked itself, is a master that serves
// slots.
func (c *Cluster) ServesAsMaster(t testing.TB, s *Server) bool {
	return s.Info(t, "replication", "role") == "master" && s.ClusterInfo(t, "cluster_state") == "ok"
}

// KeySlot is the slot of key as s computes it (CLUSTER KEYSLOT).
func (c *Cluster) KeySlot(t testing.TB, key string) int {
	for _, s := range c.Nodes {
		if v, err := s.Do(t, "CLUSTER", "KEYSLOT", key); err == nil {
			n, _ := v.(int64)
			return int(n)
		}
	}
	t.Fatal("redistest: no cluster node answers CLUSTER KEYSLOT")
	return 0
}
