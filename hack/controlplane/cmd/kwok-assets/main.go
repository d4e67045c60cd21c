// Command kwok-assets writes the kwok manifests the test control plane needs, taken from the kwok
// module pinned in ../../go.mod, so that they always match the kwok binary built beside them:
//
//	kwok-assets CRDS_FILE STAGES_FILE
//
// CRDS_FILE receives kwok's PortForward and ClusterPortForward CustomResourceDefinitions; STAGES_FILE
// receives the node and pod lifecycle stages kwokctl uses by default (nodes turn Ready, pods turn
// Running and Ready with a pod IP, deleted pods go away).
package main

import (
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/kwok/kustomize/crd"
	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodeheartbeat "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: kwok-assets CRDS_FILE STAGES_FILE")
		os.Exit(2)
	}
	crds := join(string(crd.PortForward), string(crd.ClusterPortForward))
	stages := join(nodefast.DefaultNodeInit, nodeheartbeat.DefaultNodeHeartbeat,
		podfast.DefaultPodReady, podfast.DefaultPodComplete, podfast.DefaultPodDelete)
	for file, body := range map[string]string{os.Args[1]: crds, os.Args[2]: stages} {
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "kwok-assets:", err)
			os.Exit(1)
		}
	}
}

// join makes one multi-document YAML stream of the given documents.
func join(docs ...string) string {
	var b strings.Builder
	for _, d := range docs {
		b.WriteString("---\n")
		b.WriteString(strings.TrimPrefix(strings.TrimSpace(d), "---\n"))
		b.WriteString("\n")
	}
	return b.String()
}
