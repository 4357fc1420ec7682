package deploy_test

import (
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// ruleFile is a Prometheus rule file; decoding is strict, so a misspelt
// field (annotation, keep_firing_for, ...) fails here before promtool.
type ruleFile struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []rule `json:"rules"`
}

type rule struct {
	Record      string            `json:"record,omitempty"`
	Alert       string            `json:"alert,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ruleTestFile is a promtool test file.
type ruleTestFile struct {
	RuleFiles          []string `json:"rule_files"`
	EvaluationInterval string   `json:"evaluation_interval"`
	Tests              []struct {
		Interval    string `json:"interval"`
		InputSeries []struct {
			Series string `json:"series"`
			Values string `json:"values"`
		} `json:"input_series"`
		AlertRuleTest []struct {
			EvalTime  string `json:"eval_time"`
			Alertname string `json:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `json:"exp_labels"`
				ExpAnnotations map[string]string `json:"exp_annotations"`
			} `json:"exp_alerts"`
		} `json:"alert_rule_test"`
		PromQLExprTest []struct {
			Expr       string `json:"expr"`
			EvalTime   string `json:"eval_time"`
			ExpSamples []struct {
				Labels string  `json:"labels"`
				Value  float64 `json:"value"`
			} `json:"exp_samples"`
		} `json:"promql_expr_test"`
	} `json:"tests"`
}

var ruleTestFiles = []string{"alerts_test.yaml", "alerts_slo_test.yaml"}

func loadRules(t testing.TB) ruleFile {
	t.Helper()
	var rf ruleFile
	decodeStrict(t, "alerts.yaml", readFile(t, deployPath(t, "prometheus", "alerts.yaml")), &rf)
	return rf
}

// The alerts the issue asks for, by what they watch; each must exist.
var requiredAlerts = []string{
	"KeyDeliveryHighErrorRatio",               // high error ratio
	"KeyDeliveryLatencyBudgetBurnFast",        // latency SLO burn (multi-window)
	"KeyDeliveryLatencyBudgetBurnSlow",        //
	"KeyDeliveryStoreUnavailable",             // store unavailable
	"KeyDeliveryTokenCertificateExpiringSoon", // token certificate expiring within 14 days
	"KeyDeliveryTokenCertificateExpired",      // and expired
	"KeyDeliveryAuditWriteFailures",           // audit write failures
	"KeyDeliveryNoSuccessfulDeliveries",       // no successful deliveries while requests arrive
	"KeyDeliveryTLSCertificateExpiringSoon",   // the listeners' TLS certificate expiring within 14 days
	"KeyDeliveryTLSCertificateExpired",        // and expired
}

// TestAlertRules runs promtool (from the Debian package prometheus): check
// rules, then the unit tests, and checks what promtool does not: every
// alert has a severity, a summary, a description and a runbook section in
// docs/operations.md, and is tested both firing and quiet.
func TestAlertRules(t *testing.T) {
	rf := loadRules(t)
	ops := string(readFile(t, repoRoot(t)+"/docs/operations.md"))
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*$`).FindAllStringSubmatch(ops, -1) {
		anchors[githubAnchor(m[1])] = true
	}
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if (r.Alert == "") == (r.Record == "") {
				t.Errorf("group %s: a rule must be an alert or a recording rule: %+v", g.Name, r)
			}
			if r.Record != "" && !regexp.MustCompile(`^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$`).MatchString(r.Record) {
				t.Errorf("recording rule %s: want level:metric:operations naming", r.Record)
			}
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			anchor := strings.ToLower(r.Alert)
			if !strings.HasSuffix(r.Annotations["runbook_url"], "/docs/operations.md#"+anchor) {
				t.Errorf("%s: runbook_url %q, want .../docs/operations.md#%s", r.Alert, r.Annotations["runbook_url"], anchor)
			}
			if !anchors[anchor] {
				t.Errorf("%s: docs/operations.md has no section %q (a heading named after the alert)", r.Alert, r.Alert)
			}
		}
	}
	for _, a := range requiredAlerts {
		if !alerts[a] {
			t.Errorf("alerts.yaml has no alert %s", a)
		}
	}

	// Every alert is tested firing and quiet; every test names a real alert.
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, f := range ruleTestFiles {
		var tf ruleTestFile
		decodeStrict(t, f, readFile(t, deployPath(t, "prometheus", f)), &tf)
		if len(tf.RuleFiles) != 1 || tf.RuleFiles[0] != "alerts.yaml" {
			t.Errorf("%s: rule_files %v, want [alerts.yaml]", f, tf.RuleFiles)
		}
		for _, tg := range tf.Tests {
			for _, at := range tg.AlertRuleTest {
				if !alerts[at.Alertname] {
					t.Errorf("%s: tests unknown alert %s", f, at.Alertname)
				}
				if len(at.ExpAlerts) > 0 {
					firing[at.Alertname] = true
				} else {
					quiet[at.Alertname] = true
				}
			}
		}
	}
	var names []string
	for a := range alerts {
		names = append(names, a)
	}
	sort.Strings(names)
	for _, a := range names {
		if !firing[a] || !quiet[a] {
			t.Errorf("%s: want promtool tests where it fires (%v) and where it stays quiet (%v)", a, firing[a], quiet[a])
		}
	}

	promtool := lookPathOrFail(t, "promtool", "apt-get install prometheus   (Debian's package ships promtool)")
	dir := deployPath(t, "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "alerts.yaml"},
		append([]string{"test", "rules"}, ruleTestFiles...),
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// githubAnchor is the fragment GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteRune('-')
		}
	}
	return b.String()
}
