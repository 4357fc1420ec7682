package deploy_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// composeFile is the subset of the Compose specification compose.yaml uses.
// Decoding is strict: a misspelt key fails here (Compose would refuse it
// too); a new, valid key needs a field below.
type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
	Volumes  map[string]any            `json:"volumes"`
}

type composeService struct {
	Build *struct {
		Context    string            `json:"context"`
		Dockerfile string            `json:"dockerfile"`
		Args       map[string]string `json:"args"`
	} `json:"build"`
	Image           string            `json:"image"`
	Command         []string          `json:"command"`
	Environment     map[string]string `json:"environment"`
	Ports           []string          `json:"ports"`
	Volumes         []string          `json:"volumes"`
	ReadOnly        bool              `json:"read_only"`
	CapDrop         []string          `json:"cap_drop"`
	SecurityOpt     []string          `json:"security_opt"`
	User            string            `json:"user"`
	StopGracePeriod string            `json:"stop_grace_period"`
	DependsOn       any               `json:"depends_on"`
	Restart         string            `json:"restart"`
	Healthcheck     *struct {
		Test     []string `json:"test"`
		Interval string   `json:"interval"`
		Timeout  string   `json:"timeout"`
		Retries  int      `json:"retries"`
	} `json:"healthcheck"`
}

// prometheusConfig is the part of prometheus.yml the stack uses.
type prometheusConfig struct {
	Global struct {
		ScrapeInterval     string `json:"scrape_interval"`
		EvaluationInterval string `json:"evaluation_interval"`
	} `json:"global"`
	RuleFiles     []string `json:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `json:"job_name"`
		StaticConfigs []struct {
			Targets []string `json:"targets"`
		} `json:"static_configs"`
	} `json:"scrape_configs"`
}

// mount is one short-syntax volume of a Compose service.
type mount struct{ source, target string }

func mounts(t *testing.T, svc string, s composeService) []mount {
	var ms []mount
	for _, v := range s.Volumes {
		f := strings.Split(v, ":")
		if len(f) < 2 {
			t.Errorf("service %s: volume %q: want SOURCE:TARGET[:ro]", svc, v)
			continue
		}
		ms = append(ms, mount{f[0], f[1]})
	}
	return ms
}

func TestCompose(t *testing.T) {
	dir := deployPath(t, "compose")
	var cf composeFile
	decodeStrict(t, "compose.yaml", readFile(t, filepath.Join(dir, "compose.yaml")), &cf)
	for _, s := range []string{"keydelivery", "redis", "prometheus", "grafana"} {
		if _, ok := cf.Services[s]; !ok {
			t.Fatalf("compose.yaml: no service %s", s)
		}
	}

	// Every bind mount's source exists; every named volume is declared;
	// published ports stay on the host's loopback.
	hostFile := map[string]string{} // container path -> host path, per service "svc:path"
	for name, s := range cf.Services {
		for _, m := range mounts(t, name, s) {
			if strings.HasPrefix(m.source, ".") || strings.HasPrefix(m.source, "/") {
				p := filepath.Join(dir, m.source)
				if _, err := os.Stat(p); err != nil {
					t.Errorf("service %s: bind mount source %s: %v", name, m.source, err)
				}
				hostFile[name+":"+m.target] = p
			} else if _, ok := cf.Volumes[m.source]; !ok {
				t.Errorf("service %s: volume %s is not declared under volumes:", name, m.source)
			}
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s: port %q is published on every interface; bind it to 127.0.0.1", name, p)
			}
		}
	}

	// keydelivery: built from deploy/Dockerfile at the repository root,
	// hardened as in production, admin plane reachable by Prometheus.
	kd := cf.Services["keydelivery"]
	if kd.Build == nil {
		t.Fatal("keydelivery: want build: (from deploy/Dockerfile)")
	}
	ctx := filepath.Join(dir, kd.Build.Context)
	if abs, _ := filepath.Abs(ctx); abs != repoRoot(t) {
		t.Errorf("keydelivery build context %s is not the repository root", kd.Build.Context)
	}
	if _, err := os.Stat(filepath.Join(ctx, kd.Build.Dockerfile)); err != nil || filepath.ToSlash(kd.Build.Dockerfile) != "deploy/Dockerfile" {
		t.Errorf("keydelivery dockerfile %s: want deploy/Dockerfile (%v)", kd.Build.Dockerfile, err)
	}
	for _, a := range []string{"VERSION", "COMMIT"} {
		if _, ok := kd.Build.Args[a]; !ok {
			t.Errorf("keydelivery build args: want %s (stamped into the binary)", a)
		}
	}
	var names []string
	for k := range kd.Environment {
		names = append(names, k)
	}
	checkEnvNames(t, "compose.yaml keydelivery environment", names)
	if !regexp.MustCompile(`^redis://redis:6379/`).MatchString(kd.Environment["KD_STORE"]) {
		t.Errorf("keydelivery KD_STORE=%q: want the stack's Redis (redis://redis:6379/N)", kd.Environment["KD_STORE"])
	}
	adminHost, adminPort, err := net.SplitHostPort(kd.Environment["KD_ADMIN_LISTEN"])
	if err != nil || adminHost == "127.0.0.1" || adminHost == "localhost" {
		t.Errorf("keydelivery KD_ADMIN_LISTEN=%q: Prometheus scrapes it over the Compose network", kd.Environment["KD_ADMIN_LISTEN"])
	}
	if !kd.ReadOnly || len(kd.CapDrop) != 1 || kd.CapDrop[0] != "ALL" || !strings.Contains(strings.Join(kd.SecurityOpt, " "), "no-new-privileges") {
		t.Error("keydelivery: want read_only, cap_drop [ALL] and no-new-privileges, as in production")
	}
	if m := regexp.MustCompile(`(?m)^USER (\S+)`).FindStringSubmatch(string(readFile(t, deployPath(t, "Dockerfile")))); m == nil || m[1] != kd.User {
		t.Errorf("keydelivery user %q differs from the Dockerfile's USER %v", kd.User, m)
	}
	if g, err := time.ParseDuration(kd.StopGracePeriod); err != nil || g <= 15*time.Second {
		t.Errorf("keydelivery stop_grace_period %q: must exceed the drain (15s by default)", kd.StopGracePeriod)
	}
	dataMounted := false
	for _, m := range mounts(t, "keydelivery", kd) {
		dataMounted = dataMounted || m.target == "/data"
	}
	if !dataMounted {
		t.Error("keydelivery: mount a volume at /data (the root filesystem is read-only; --dev writes its material there)")
	}

	// Redis: the production settings.
	rd := cf.Services["redis"]
	if len(rd.Command) < 2 || hostFile["redis:"+rd.Command[1]] == "" {
		t.Fatalf("redis command %v: want redis-server with a mounted configuration file", rd.Command)
	}
	conf := string(readFile(t, hostFile["redis:"+rd.Command[1]]))
	for _, want := range []string{`appendonly\s+yes`, `appendfsync\s+always`, `maxmemory-policy\s+noeviction`} {
		if !regexp.MustCompile(`(?m)^` + want + `\s*$`).MatchString(conf) {
			t.Errorf("redis.conf lacks %q", want)
		}
	}

	// Prometheus: scrapes job "keydelivery" at the admin plane, loads the
	// rules; promtool checks the configuration as the container sees it.
	pr := cf.Services["prometheus"]
	var cfgPath string
	for _, a := range pr.Command {
		if v, ok := strings.CutPrefix(a, "--config.file="); ok {
			cfgPath = v
		}
	}
	hostCfg := hostFile["prometheus:"+cfgPath]
	if hostCfg == "" {
		t.Fatalf("prometheus: --config.file=%q is not a mounted file", cfgPath)
	}
	var pc prometheusConfig
	decodeStrict(t, "prometheus.yml", readFile(t, hostCfg), &pc)
	var target string
	for _, sc := range pc.ScrapeConfigs {
		if sc.JobName == "keydelivery" && len(sc.StaticConfigs) == 1 && len(sc.StaticConfigs[0].Targets) == 1 {
			target = sc.StaticConfigs[0].Targets[0]
		}
	}
	if target != net.JoinHostPort("keydelivery", adminPort) {
		t.Errorf("prometheus.yml: job \"keydelivery\" scrapes %q, want keydelivery:%s (the admin plane)", target, adminPort)
	}
	rulesMounted := false
	root := t.TempDir()
	for key, host := range hostFile {
		svc, target, _ := strings.Cut(key, ":")
		if svc != "prometheus" {
			continue
		}
		if host == deployPath(t, "prometheus", "alerts.yaml") {
			rulesMounted = true
			ok := false
			for _, g := range pc.RuleFiles {
				m, _ := filepath.Match(filepath.Join(filepath.Dir(cfgPath), g), target)
				ok = ok || m
			}
			if !ok {
				t.Errorf("prometheus.yml rule_files %v do not load %s, where alerts.yaml is mounted", pc.RuleFiles, target)
			}
		}
		dst := filepath.Join(root, target)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, readFile(t, host), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !rulesMounted {
		t.Error("prometheus: deploy/prometheus/alerts.yaml is not mounted")
	}
	promtool := lookPathOrFail(t, "promtool", "apt-get install prometheus   (Debian's package ships promtool)")
	if out, err := exec.Command(promtool, "check", "config", filepath.Join(root, cfgPath)).CombinedOutput(); err != nil {
		t.Errorf("promtool check config (as mounted in the container): %v\n%s", err, out)
	} else if !strings.Contains(string(out), "SUCCESS") || !strings.Contains(string(out), "rules found") {
		t.Errorf("promtool check config loaded no rules:\n%s", out)
	}

	// Grafana: the Prometheus data source and the dashboard provisioned.
	gf := cf.Services["grafana"]
	var dashTarget, provTarget string
	for key, host := range hostFile {
		svc, target, _ := strings.Cut(key, ":")
		switch {
		case svc == "grafana" && host == deployPath(t, "grafana", "keydelivery.json"):
			dashTarget = target
		case svc == "grafana" && target == "/etc/grafana/provisioning":
			provTarget = host
		}
	}
	if dashTarget == "" || provTarget == "" {
		t.Fatalf("grafana: mount deploy/grafana/keydelivery.json and the provisioning directory at /etc/grafana/provisioning")
	}
	var ds struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name      string         `json:"name"`
			UID       string         `json:"uid"`
			Type      string         `json:"type"`
			Access    string         `json:"access"`
			URL       string         `json:"url"`
			IsDefault bool           `json:"isDefault"`
			Editable  bool           `json:"editable"`
			JSONData  map[string]any `json:"jsonData"`
		} `json:"datasources"`
	}
	decodeStrict(t, "datasources/prometheus.yaml", readFile(t, filepath.Join(provTarget, "datasources", "prometheus.yaml")), &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || !ds.Datasources[0].IsDefault {
		t.Error("grafana: want one default Prometheus data source")
	} else if u := ds.Datasources[0].URL; u != "http://prometheus:9090" {
		t.Errorf("grafana data source URL %q: want http://prometheus:9090", u)
	}
	var dp struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name                  string `json:"name"`
			Folder                string `json:"folder"`
			Type                  string `json:"type"`
			DisableDeletion       bool   `json:"disableDeletion"`
			AllowUIUpdates        bool   `json:"allowUiUpdates"`
			UpdateIntervalSeconds int    `json:"updateIntervalSeconds"`
			Options               struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	decodeStrict(t, "dashboards/keydelivery.yaml", readFile(t, filepath.Join(provTarget, "dashboards", "keydelivery.yaml")), &dp)
	if len(dp.Providers) != 1 || dp.Providers[0].Type != "file" || dp.Providers[0].Options.Path != filepath.Dir(dashTarget) {
		t.Errorf("grafana dashboard provider must load %s", filepath.Dir(dashTarget))
	}
	if home := gf.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" && home != dashTarget {
		t.Errorf("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH=%s, the dashboard is mounted at %s", home, dashTarget)
	}
}

// TestComposeConfig asks Compose itself to validate the file (no daemon
// needed): `docker compose config` where Compose v2 is installed, else
// docker-compose v1 (Debian's package) on a copy without the top-level
// name: key, which v1 predates, resolving paths from deploy/compose.
func TestComposeConfig(t *testing.T) {
	file := deployPath(t, "compose", "compose.yaml")
	if docker, err := exec.LookPath("docker"); err == nil && exec.Command(docker, "compose", "version").Run() == nil {
		if out, err := exec.Command(docker, "compose", "-f", file, "config", "--quiet").CombinedOutput(); err != nil {
			t.Errorf("docker compose config: %v\n%s", err, out)
		}
		return
	}
	v1, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatal("neither `docker compose` (v2) nor docker-compose (v1) is installed: install it with `apt-get install docker-compose` (scripts/test.sh does this when run as root)")
	}
	text := regexp.MustCompile(`(?m)^name: .*\n`).ReplaceAllString(string(readFile(t, file)), "")
	cp := filepath.Join(t.TempDir(), "compose.yaml")
	if err := os.WriteFile(cp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(v1, "--project-directory", deployPath(t, "compose"), "-f", cp, "config", "--quiet").CombinedOutput()
	if err != nil {
		t.Errorf("docker-compose (v1) config: %v\n%s", err, out)
	}
	t.Log("validated with docker-compose v1 (Compose v2 not installed)")
}
