// pause: the sandbox ("infra") container of every pod on the test node. It holds the pod's
// namespaces and does nothing else: waits for SIGINT or SIGTERM and exits 0. Written here because no
// image can be pulled on the test machine; it does what the upstream pause binary does, minus zombie
// reaping (the test node's pods do not share a PID namespace).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	done := make(chan os.Signal, 1)
	signal.Notify(done, syscall.SIGINT, syscall.SIGTERM)
	<-done
}
