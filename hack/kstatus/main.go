// Command kstatus computes the kstatus status of Kubernetes objects the way Flux's kustomize-controller
// does for `wait: true` and `healthChecks` (sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute):
//
//	kubectl get portforwards -o json | kstatus
//
// It reads one object or a List (JSON or YAML) on stdin and prints one JSON line per object:
// {"namespace":..., "name":..., "status":"Current|InProgress|Failed|Terminating|Unknown", "message":...}.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

type line struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	raw, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	data, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("stdin is not a Kubernetes object: %w", err)
	}
	// The API machinery's JSON decoder keeps integers int64, as the objects Flux reads from the API are.
	var obj map[string]interface{}
	if err := utiljson.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("stdin is not a Kubernetes object: %w", err)
	}
	u := &unstructured.Unstructured{Object: obj}
	items := []unstructured.Unstructured{*u}
	if u.IsList() {
		list, err := u.ToList()
		if err != nil {
			return err
		}
		items = list.Items
	}
	enc := json.NewEncoder(out)
	for i := range items {
		res, err := status.Compute(&items[i])
		if err != nil {
			return fmt.Errorf("%s/%s: %w", items[i].GetNamespace(), items[i].GetName(), err)
		}
		if err := enc.Encode(line{items[i].GetNamespace(), items[i].GetName(), res.Status.String(), res.Message}); err != nil {
			return err
		}
	}
	return nil
}
