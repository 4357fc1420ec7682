package deploy_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// kustomization is the subset of kustomize's Kustomization that
// deploy/kubernetes uses; decoding is strict, so a misspelt field fails.
type kustomization struct {
	APIVersion         string   `json:"apiVersion"`
	Kind               string   `json:"kind"`
	Namespace          string   `json:"namespace"`
	Resources          []string `json:"resources"`
	ConfigMapGenerator []struct {
		Name    string   `json:"name"`
		Envs    []string `json:"envs"`
		Options struct {
			Labels map[string]string `json:"labels"`
		} `json:"options"`
	} `json:"configMapGenerator"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
		Digest  string `json:"digest"`
	} `json:"images"`
}

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor we
// use, checked structurally (the CRD's Go types would pull in the whole
// Prometheus Operator).
type serviceMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		JobLabel          string               `json:"jobLabel"`
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any"`
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Scheme        string `json:"scheme"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// prometheusRule is monitoring.coreos.com/v1 PrometheusRule: the groups of
// a Prometheus rule file under spec.
type prometheusRule struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Groups []ruleGroup `json:"groups"`
	} `json:"spec"`
}

// manifests is every object of deploy/kubernetes, decoded.
type manifests struct {
	kust         kustomization
	namespace    *corev1.Namespace
	sa           *corev1.ServiceAccount
	deployment   *appsv1.Deployment
	services     map[string]*corev1.Service
	hpa          *autoscalingv2.HorizontalPodAutoscaler
	pdb          *policyv1.PodDisruptionBudget
	netpol       *networkingv1.NetworkPolicy
	monitor      *serviceMonitor
	rule         *prometheusRule
	secrets      map[string]*corev1.Secret    // secrets.example.yaml
	configMaps   map[string]*corev1.ConfigMap // secrets.example.yaml
	configEnv    map[string]string            // config.env
	generatedCMs map[string]bool              // configMapGenerator names
}

const k8sDir = "kubernetes"

// decodeManifest decodes one document strictly into the API type its
// apiVersion and kind name, and files it in m.
func (m *manifests) decodeManifest(t *testing.T, name string, doc []byte) {
	t.Helper()
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	switch gvk := tm.APIVersion + " " + tm.Kind; gvk {
	case "v1 Namespace":
		m.namespace = &corev1.Namespace{}
		decodeStrict(t, name, doc, m.namespace)
	case "v1 ServiceAccount":
		m.sa = &corev1.ServiceAccount{}
		decodeStrict(t, name, doc, m.sa)
	case "apps/v1 Deployment":
		m.deployment = &appsv1.Deployment{}
		decodeStrict(t, name, doc, m.deployment)
	case "v1 Service":
		s := &corev1.Service{}
		decodeStrict(t, name, doc, s)
		m.services[s.Name] = s
	case "autoscaling/v2 HorizontalPodAutoscaler":
		m.hpa = &autoscalingv2.HorizontalPodAutoscaler{}
		decodeStrict(t, name, doc, m.hpa)
	case "policy/v1 PodDisruptionBudget":
		m.pdb = &policyv1.PodDisruptionBudget{}
		decodeStrict(t, name, doc, m.pdb)
	case "networking.k8s.io/v1 NetworkPolicy":
		m.netpol = &networkingv1.NetworkPolicy{}
		decodeStrict(t, name, doc, m.netpol)
	case "monitoring.coreos.com/v1 ServiceMonitor":
		m.monitor = &serviceMonitor{}
		decodeStrict(t, name, doc, m.monitor)
	case "monitoring.coreos.com/v1 PrometheusRule":
		m.rule = &prometheusRule{}
		decodeStrict(t, name, doc, m.rule)
	case "v1 Secret":
		s := &corev1.Secret{}
		decodeStrict(t, name, doc, s)
		m.secrets[s.Name] = s
	case "v1 ConfigMap":
		c := &corev1.ConfigMap{}
		decodeStrict(t, name, doc, c)
		m.configMaps[c.Name] = c
	default:
		t.Fatalf("%s: unexpected object %q: add it to the test", name, gvk)
	}
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{services: map[string]*corev1.Service{}, secrets: map[string]*corev1.Secret{},
		configMaps: map[string]*corev1.ConfigMap{}, generatedCMs: map[string]bool{}}
	decodeStrict(t, "kustomization.yaml", readFile(t, deployPath(t, k8sDir, "kustomization.yaml")), &m.kust)
	if m.kust.APIVersion != "kustomize.config.k8s.io/v1beta1" || m.kust.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: apiVersion/kind %s %s", m.kust.APIVersion, m.kust.Kind)
	}
	listed := map[string]bool{}
	for _, r := range m.kust.Resources {
		listed[r] = true
		for i, doc := range yamlDocs(readFile(t, deployPath(t, k8sDir, r))) {
			m.decodeManifest(t, fmt.Sprintf("%s (document %d)", r, i+1), doc)
		}
	}
	for _, g := range m.kust.ConfigMapGenerator {
		m.generatedCMs[g.Name] = true
		for _, e := range g.Envs {
			listed[e] = true
			for k, v := range parseEnvFile(t, deployPath(t, k8sDir, e)) {
				if m.configEnv == nil {
					m.configEnv = map[string]string{}
				}
				m.configEnv[k] = v
			}
		}
	}
	// secrets.example.yaml and namespace.yaml are kept out of the
	// kustomization on purpose (an apply must never replace the real KEK
	// with a placeholder, a delete never remove the namespace holding it);
	// every other file must be in it.
	entries, err := os.ReadDir(deployPath(t, k8sDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		if n == "kustomization.yaml" || n == "secrets.example.yaml" || n == "namespace.yaml" || e.IsDir() {
			continue
		}
		if !listed[n] {
			t.Errorf("%s/%s is not used by kustomization.yaml", k8sDir, n)
		}
	}
	if listed["secrets.example.yaml"] {
		t.Error("kustomization.yaml must not apply secrets.example.yaml: an apply would overwrite the real secrets with placeholders")
	}
	if listed["namespace.yaml"] {
		t.Error("kustomization.yaml must not manage the namespace: `kubectl delete -k` would delete it, and the KEK Secret in it")
	}
	for _, f := range []string{"namespace.yaml", "secrets.example.yaml"} {
		for i, doc := range yamlDocs(readFile(t, deployPath(t, k8sDir, f))) {
			m.decodeManifest(t, fmt.Sprintf("%s (document %d)", f, i+1), doc)
		}
	}
	for what, missing := range map[string]bool{
		"Namespace": m.namespace == nil, "ServiceAccount": m.sa == nil, "Deployment": m.deployment == nil,
		"HorizontalPodAutoscaler": m.hpa == nil, "PodDisruptionBudget": m.pdb == nil, "NetworkPolicy": m.netpol == nil,
		"ServiceMonitor": m.monitor == nil, "PrometheusRule": m.rule == nil,
	} {
		if missing {
			t.Fatalf("deploy/kubernetes has no %s", what)
		}
	}
	return m
}

func selectorMatches(t *testing.T, what string, sel *metav1.LabelSelector, set map[string]string) {
	t.Helper()
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		t.Errorf("%s: empty selector (selects everything)", what)
		return
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if !s.Matches(labels.Set(set)) {
		t.Errorf("%s: selector %s does not match %v", what, s, set)
	}
}

// portOf resolves a port (a number or a container port name) of c.
func portOf(c corev1.Container, p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, true
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func listenPort(t *testing.T, name, addr string) (host string, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("%s=%q: %v", name, addr, err)
	}
	return host, port
}

func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	d := m.deployment
	pod := d.Spec.Template.Spec
	podLabels := d.Spec.Template.Labels

	// Namespace: the one the kustomization puts everything in, restricted.
	if m.kust.Namespace == "" || m.namespace.Name != m.kust.Namespace {
		t.Errorf("kustomization namespace %q, Namespace object %q", m.kust.Namespace, m.namespace.Name)
	}
	if m.namespace.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Error("the namespace should enforce the restricted Pod Security Standard")
	}
	if len(m.kust.Images) != 1 || m.kust.Images[0].Name != pod.Containers[0].Image {
		t.Errorf("kustomization images must set the container image %q", pod.Containers[0].Image)
	}

	// Deployment.
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		t.Error("Deployment: want 2 or more replicas")
	}
	selectorMatches(t, "Deployment", d.Spec.Selector, podLabels)
	if len(pod.Containers) != 1 {
		t.Fatalf("Deployment: want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != 8080 || ports["admin"] != 8081 {
		t.Errorf("container ports %v: want http 8080 and admin 8081", ports)
	}
	env := map[string]string{}
	var envNames []string
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("Deployment: env %s set twice", e.Name)
		}
		env[e.Name] = e.Value
		envNames = append(envNames, e.Name)
	}
	for k := range m.configEnv {
		if _, both := env[k]; both {
			t.Errorf("%s is set both in config.env and in the Deployment (the Deployment wins silently)", k)
		}
		envNames = append(envNames, k)
	}
	checkEnvNames(t, "deploy/kubernetes (Deployment env and config.env)", envNames)
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil || !m.generatedCMs[ef.ConfigMapRef.Name] {
			t.Errorf("envFrom %+v: not a ConfigMap the kustomization generates", ef)
		}
	}
	for _, k := range []string{"KD_STORE", "KD_TOKEN_ISSUER", "KD_TOKEN_AUDIENCE"} {
		if m.configEnv[k] == "" {
			t.Errorf("config.env must set %s", k)
		}
	}
	if s := m.configEnv["KD_STORE"]; !strings.HasPrefix(s, "redis") {
		t.Errorf("KD_STORE=%q: replicas must share a Redis store (a bolt file per pod would give each its own keys)", s)
	} else if regexp.MustCompile(`://[^/@]*:[^/@]*@`).MatchString(s) {
		t.Errorf("KD_STORE holds a password: it belongs in the Secret keydelivery-redis")
	}
	if host, port := listenPort(t, "KD_ADMIN_LISTEN", env["KD_ADMIN_LISTEN"]); port != "8081" || host == "127.0.0.1" || host == "localhost" {
		t.Errorf("KD_ADMIN_LISTEN=%q: the probes and Prometheus need the admin plane on the pod IP, port 8081", env["KD_ADMIN_LISTEN"])
	}
	if _, port := listenPort(t, "KD_LISTEN", env["KD_LISTEN"]); port != "8080" {
		t.Errorf("KD_LISTEN=%q: want port 8080", env["KD_LISTEN"])
	}

	// Probes on the admin plane.
	for name, p := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{"liveness": {c.LivenessProbe, "/healthz"}, "readiness": {c.ReadinessProbe, "/readyz"}, "startup": {c.StartupProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe: want an HTTP GET probe", name)
			continue
		}
		port, ok := portOf(c, p.probe.HTTPGet.Port)
		if p.probe.HTTPGet.Path != p.path || !ok || port != 8081 {
			t.Errorf("%s probe: GET %s on %s, want %s on the admin port 8081", name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path)
		}
	}

	// Graceful termination covers the drain.
	delay, err1 := time.ParseDuration(env["KD_DRAIN_DELAY"])
	timeout, err2 := time.ParseDuration(env["KD_DRAIN_TIMEOUT"])
	if err1 != nil || err2 != nil {
		t.Errorf("the Deployment must set KD_DRAIN_DELAY and KD_DRAIN_TIMEOUT (%v, %v)", err1, err2)
	} else if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= delay+timeout {
		t.Errorf("terminationGracePeriodSeconds must exceed KD_DRAIN_DELAY + KD_DRAIN_TIMEOUT (%s)", delay+timeout)
	} else if delay <= 0 {
		t.Error("KD_DRAIN_DELAY should be positive behind a Service: endpoints take time to drop a terminating pod")
	}

	// Security context: non-root (the image's user), read-only root, no
	// privilege escalation, no capabilities, RuntimeDefault seccomp.
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("pod securityContext: want runAsNonRoot and a non-zero runAsUser")
	} else {
		if m := regexp.MustCompile(`(?m)^USER (\d+)`).FindStringSubmatch(string(readFile(t, deployPath(t, "Dockerfile")))); m == nil || m[1] != fmt.Sprint(*psc.RunAsUser) {
			t.Errorf("runAsUser %d differs from the Dockerfile's USER %v", *psc.RunAsUser, m)
		}
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod securityContext: want seccompProfile RuntimeDefault")
	}
	csc := c.SecurityContext
	if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
		csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
		csc.Capabilities == nil || len(csc.Capabilities.Drop) != 1 || csc.Capabilities.Drop[0] != "ALL" || len(csc.Capabilities.Add) != 0 ||
		(csc.Privileged != nil && *csc.Privileged) {
		t.Error("container securityContext: want allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities drop [ALL], not privileged")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("the pod must not mount a service account token (the server never calls the API)")
	}
	if pod.ServiceAccountName != m.sa.Name {
		t.Errorf("serviceAccountName %q, ServiceAccount %q", pod.ServiceAccountName, m.sa.Name)
	}

	// Resources; GOMEMLIMIT under the memory limit.
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
		t.Error("resources: want cpu and memory requests and a memory limit")
	}
	if gml := env["GOMEMLIMIT"]; gml != "" {
		q, err := resource.ParseQuantity(strings.TrimSuffix(gml, "B"))
		if err != nil {
			t.Errorf("GOMEMLIMIT=%q: %v", gml, err)
		} else if q.Cmp(*lim.Memory()) >= 0 || q.Value() < lim.Memory().Value()*7/10 {
			t.Errorf("GOMEMLIMIT=%s should be 70-100%% of limits.memory %s", gml, lim.Memory())
		}
	}

	// Volumes: every mount has a volume; every file the server is told to
	// read is under a mount and, for volumes with items, is one of them; every
	// Secret and ConfigMap mounted is described in secrets.example.yaml.
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range c.VolumeMounts {
		if _, ok := vols[vm.Name]; !ok {
			t.Errorf("volumeMount %s: no such volume", vm.Name)
		}
		if !vm.ReadOnly {
			t.Errorf("volumeMount %s: mount secrets and certificates read-only", vm.Name)
		}
		if vm.SubPath != "" {
			t.Errorf("volumeMount %s: subPath mounts never see updates (certificate rollover)", vm.Name)
		}
		mounts[vm.MountPath] = vm
	}
	fileEnv := []string{"KD_KEK_FILE", "KD_ADMIN_CREDENTIALS_FILE", "KD_REDIS_PASSWORD_FILE", "KD_TOKEN_CERTS", "KD_PROTECTION_CERT", "KD_PROTECTION_KEY",
		"KD_TLS_CERT", "KD_TLS_KEY"} // the delivery plane serves HTTPS itself
	for _, k := range fileEnv {
		p := env[k]
		if p == "" {
			t.Errorf("the Deployment must set %s to a mounted file", k)
			continue
		}
		found := false
		for mp, vm := range mounts {
			rel, err := filepath.Rel(mp, p)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue
			}
			found = true
			v := vols[vm.Name]
			var items []corev1.KeyToPath
			switch {
			case v.Secret != nil:
				items = v.Secret.Items
			case v.ConfigMap != nil:
				items = v.ConfigMap.Items
			}
			if rel == "." || len(items) == 0 {
				break
			}
			ok := false
			for _, it := range items {
				ok = ok || it.Path == rel
			}
			if !ok {
				t.Errorf("%s=%s: volume %s has no item with path %s", k, p, vm.Name, rel)
			}
		}
		if !found {
			t.Errorf("%s=%s is under no volume mount", k, p)
		}
	}
	for _, v := range pod.Volumes {
		switch {
		case v.Secret != nil:
			s, ok := m.secrets[v.Secret.SecretName]
			if !ok {
				t.Errorf("volume %s: Secret %s is not described in secrets.example.yaml", v.Name, v.Secret.SecretName)
				continue
			}
			if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode&0o007 != 0 {
				t.Errorf("volume %s: secret files must not be world-readable (defaultMode)", v.Name)
			}
			for _, it := range v.Secret.Items {
				if _, ok := s.StringData[it.Key]; !ok {
					t.Errorf("volume %s: Secret %s has no key %s in secrets.example.yaml", v.Name, s.Name, it.Key)
				}
			}
		case v.ConfigMap != nil:
			if _, ok := m.configMaps[v.ConfigMap.Name]; !ok {
				t.Errorf("volume %s: ConfigMap %s is not described in secrets.example.yaml", v.Name, v.ConfigMap.Name)
			}
		}
	}
	for name, s := range m.secrets {
		for k, v := range s.StringData {
			if !strings.Contains(v, "REPLACE") {
				t.Errorf("secrets.example.yaml: %s/%s holds something other than a placeholder", name, k)
			}
		}
	}

	// Services: the delivery one exposes only the delivery port, the admin
	// one only the admin port and stays in the cluster.
	for name, wantPort := range map[string]string{"keydelivery": "http", "keydelivery-admin": "admin"} {
		s, ok := m.services[name]
		if !ok {
			t.Errorf("no Service %s", name)
			continue
		}
		selectorMatches(t, "Service "+name, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}, podLabels)
		for _, p := range s.Spec.Ports {
			if n, ok := portOf(c, p.TargetPort); !ok || n != ports[wantPort] {
				t.Errorf("Service %s: port %s targets %s, want only the %s port", name, p.Name, p.TargetPort.String(), wantPort)
			}
		}
	}
	if s := m.services["keydelivery-admin"]; s != nil && s.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("Service keydelivery-admin: type %s, want ClusterIP (internal only)", s.Spec.Type)
	}

	// HPA, PDB.
	ref := m.hpa.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.Name != d.Name || ref.APIVersion != "apps/v1" {
		t.Errorf("HPA targets %s %s %s", ref.APIVersion, ref.Kind, ref.Name)
	}
	if m.hpa.Spec.MinReplicas == nil || *m.hpa.Spec.MinReplicas < 2 || m.hpa.Spec.MaxReplicas < *m.hpa.Spec.MinReplicas {
		t.Error("HPA: want minReplicas >= 2 and maxReplicas >= minReplicas")
	}
	cpu := false
	for _, mt := range m.hpa.Spec.Metrics {
		cpu = cpu || (mt.Type == autoscalingv2.ResourceMetricSourceType && mt.Resource != nil && mt.Resource.Name == corev1.ResourceCPU)
	}
	if !cpu {
		t.Error("HPA: want a CPU resource metric")
	}
	selectorMatches(t, "PodDisruptionBudget", m.pdb.Spec.Selector, podLabels)
	if m.pdb.Spec.MaxUnavailable == nil && m.pdb.Spec.MinAvailable == nil {
		t.Error("PodDisruptionBudget: set maxUnavailable or minAvailable")
	}
	if ma := m.pdb.Spec.MinAvailable; ma != nil && ma.Type == intstr.Int && m.hpa.Spec.MinReplicas != nil && ma.IntVal >= *m.hpa.Spec.MinReplicas {
		t.Error("PodDisruptionBudget: minAvailable >= the HPA's minimum blocks every node drain")
	}

	// NetworkPolicy: delivery open, admin only from listed peers.
	np := m.netpol.Spec
	selectorMatches(t, "NetworkPolicy", &np.PodSelector, podLabels)
	ingress := false
	for _, pt := range np.PolicyTypes {
		ingress = ingress || pt == networkingv1.PolicyTypeIngress
	}
	if !ingress {
		t.Error("NetworkPolicy: policyTypes must include Ingress")
	}
	adminCovered, httpOpen := false, false
	for _, r := range np.Ingress {
		for _, p := range r.Ports {
			if p.Port == nil {
				t.Error("NetworkPolicy: a rule without a port opens every port")
				continue
			}
			n, _ := portOf(c, *p.Port)
			switch n {
			case 8081:
				adminCovered = true
				if len(r.From) == 0 {
					t.Error("NetworkPolicy: the admin port must be limited to listed peers")
				}
			case 8080:
				httpOpen = true
			}
		}
		if len(r.Ports) == 0 {
			t.Error("NetworkPolicy: a rule without ports opens the admin port too")
		}
	}
	if !adminCovered || !httpOpen {
		t.Error("NetworkPolicy: want a rule for the delivery port and one for the admin port")
	}

	// ServiceMonitor: scrapes the admin Service, job "keydelivery" (what
	// the alert rules select).
	adminSvc := m.services["keydelivery-admin"]
	if adminSvc != nil {
		selectorMatches(t, "ServiceMonitor", &m.monitor.Spec.Selector, adminSvc.Labels)
		if m.services["keydelivery"] != nil {
			if s, _ := metav1.LabelSelectorAsSelector(&m.monitor.Spec.Selector); s != nil && s.Matches(labels.Set(m.services["keydelivery"].Labels)) {
				t.Error("ServiceMonitor also selects the delivery Service (no /metrics there)")
			}
		}
		if v := adminSvc.Labels[m.monitor.Spec.JobLabel]; v != "keydelivery" {
			t.Errorf("ServiceMonitor jobLabel %q gives job %q; the alert rules expect job \"keydelivery\"", m.monitor.Spec.JobLabel, v)
		}
		if len(m.monitor.Spec.Endpoints) != 1 {
			t.Fatalf("ServiceMonitor: want one endpoint")
		}
		ep := m.monitor.Spec.Endpoints[0]
		if ep.Path != "/metrics" || len(adminSvc.Spec.Ports) == 0 || ep.Port != adminSvc.Spec.Ports[0].Name {
			t.Errorf("ServiceMonitor endpoint %s%s: want the admin Service port %q, path /metrics", ep.Port, ep.Path, adminSvc.Spec.Ports[0].Name)
		}
	}
	if m.monitor.APIVersion != "monitoring.coreos.com/v1" || m.rule.APIVersion != "monitoring.coreos.com/v1" {
		t.Error("ServiceMonitor and PrometheusRule: want monitoring.coreos.com/v1")
	}
}

// TestPrometheusRuleInSync keeps kubernetes/prometheusrule.yaml the same as
// prometheus/alerts.yaml; -update rewrites it.
func TestPrometheusRuleInSync(t *testing.T) {
	want := renderPrometheusRule(t)
	path := deployPath(t, k8sDir, "prometheusrule.yaml")
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != string(want) {
		t.Fatalf("deploy/kubernetes/prometheusrule.yaml is not prometheus/alerts.yaml: regenerate it with\n  go test ./deploy -run TestPrometheusRuleInSync -update")
	}
	var pr prometheusRule
	decodeStrict(t, "prometheusrule.yaml", got, &pr)
	var rf ruleFile
	decodeStrict(t, "alerts.yaml", readFile(t, deployPath(t, "prometheus", "alerts.yaml")), &rf)
	if len(pr.Spec.Groups) != len(rf.Groups) || len(pr.Spec.Groups) == 0 {
		t.Fatalf("PrometheusRule has %d groups, alerts.yaml %d", len(pr.Spec.Groups), len(rf.Groups))
	}
	for i := range rf.Groups {
		if fmt.Sprint(pr.Spec.Groups[i]) != fmt.Sprint(rf.Groups[i]) {
			t.Errorf("group %s differs", rf.Groups[i].Name)
		}
	}
}

// renderPrometheusRule wraps alerts.yaml's groups, comments and all, in a
// PrometheusRule object.
func renderPrometheusRule(t *testing.T) []byte {
	src := string(readFile(t, deployPath(t, "prometheus", "alerts.yaml")))
	i := strings.Index(src, "\ngroups:")
	if i < 0 {
		t.Fatal("alerts.yaml: no top-level groups:")
	}
	var b strings.Builder
	b.WriteString(`# GENERATED from deploy/prometheus/alerts.yaml by
#   go test ./deploy -run TestPrometheusRuleInSync -update
# Do not edit: edit alerts.yaml and regenerate. The Prometheus Operator loads
# it when its ruleSelector matches these labels (kube-prometheus-stack: add
# its release label, or set ruleSelectorNilUsesHelmValues=false there).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: keydelivery
  labels:
    app.kubernetes.io/name: keydelivery
spec:
`)
	for _, line := range strings.Split(strings.TrimRight(src[i+1:], "\n"), "\n") {
		if line == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString("  " + line + "\n")
	}
	return []byte(b.String())
}

// TestKustomizeBuild renders the kustomization with kubectl's built-in
// kustomize (no cluster needed) and decodes the result strictly.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl not found: install it (https://kubernetes.io/docs/tasks/tools/) to check the kustomize rendering; the machine image has it")
	}
	out, err := exec.Command(kubectl, "kustomize", deployPath(t, k8sDir)).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	m := &manifests{services: map[string]*corev1.Service{}, secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{}}
	var kinds []string
	for i, doc := range yamlDocs(out) {
		var obj struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, obj.Kind)
		if obj.Kind == "Namespace" || obj.Kind == "Secret" {
			t.Errorf("kustomize output holds a %s: delete -k or apply -k would touch the KEK", obj.Kind)
		}
		if obj.Metadata.Namespace != "keydelivery" {
			t.Errorf("%s %s: namespace %q after kustomize", obj.Kind, obj.Metadata.Name, obj.Metadata.Namespace)
		}
		m.decodeManifest(t, fmt.Sprintf("kustomize output (document %d)", i+1), doc)
	}
	sort.Strings(kinds)
	t.Logf("kubectl kustomize rendered: %v", kinds)
	if m.deployment == nil || len(m.configMaps) != 1 {
		t.Fatalf("kustomize output: want the Deployment and the generated ConfigMap, got %v", kinds)
	}
	for name := range m.configMaps {
		if ef := m.deployment.Spec.Template.Spec.Containers[0].EnvFrom; len(ef) != 1 || ef[0].ConfigMapRef.Name != name {
			t.Errorf("the Deployment's envFrom does not name the generated ConfigMap %s", name)
		}
	}
	if img := m.deployment.Spec.Template.Spec.Containers[0].Image; !strings.Contains(img, "/") {
		t.Errorf("image %q: the kustomization's images entry was not applied", img)
	}
}
