// coredns: CoreDNS of the version go.mod pins, with the plugins the test node's cluster DNS uses and
// no others. The upstream binary links every plugin (cloud DNS providers among them); this build keeps
// the Corefile syntax and the kubernetes plugin's behaviour, and has no `forward`, so no name is ever
// resolved outside the cluster. The Corefile is written by tools/testenv/node/dns.ts.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// The order in which the plugins of a server block handle a query, as upstream's plugin.cfg orders them.
var directives = []string{"bind", "ready", "health", "errors", "log", "cache", "kubernetes"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
