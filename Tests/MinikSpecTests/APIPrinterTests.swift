// `kubectl get` prints the Table the server sends cell by cell, so every cell here is
// what a user reads: ages in apimachinery's duration.HumanDuration form, a pod's READY,
// STATUS (the reason as printPod derives it from container and init container states)
// and RESTARTS ("3 (5m ago)"), a service's PORT(S) and EXTERNAL-IP, an Endpoints' list
// cut after three, a node's STATUS and ROLES. The expected values follow
// kubernetes/pkg/printers/internalversion/printers.go.
import Foundation
import MinikAPI
import Testing

/// A fixed "now" for every age in this file.
let printNow = Date(timeIntervalSince1970: 1_800_000_000)

/// The RFC 3339 time `seconds` before printNow.
func ago(_ seconds: Double) -> JSON { .string(rfc3339(printNow.addingTimeInterval(-seconds))) }

/// The cells of the one row `resource`'s Table has for `object`, as strings.
func printCells(_ resource: String, _ object: JSON) -> [String] {
    let t = Printers.table(resource, objects: [object], revision: nil, now: printNow)
    return (t["rows"]?.array?.first?["cells"]?.array ?? []).map { c in c.string ?? c.text }
}

@Suite("API printers: ages as HumanDuration")
struct APIHumanDurationTests {
    @Test(arguments: [
        (0.0, "0s"), (1, "1s"), (59, "59s"), (70, "70s"), (119, "119s"), (119.9, "119s"), (120, "2m"), (190, "3m10s"),
        (599, "9m59s"), (600, "10m"), (601, "10m"), (70 * 60, "70m"), (179 * 60 + 59, "179m"), (3 * 3600, "3h"), (3 * 3600 + 60, "3h1m"),
        (7 * 3600 + 59 * 60, "7h59m"), (8 * 3600, "8h"), (8 * 3600 + 59 * 60, "8h"), (47 * 3600, "47h"), (48 * 3600, "2d"), (49 * 3600, "2d1h"),
        (191 * 3600, "7d23h"), (192 * 3600, "8d"), (194 * 3600, "8d"), (367 * 86400, "367d"), (729 * 86400, "729d"), (730 * 86400, "2y"),
        (731 * 86400, "2y1d"), (365 * 2 * 86400 + 25 * 3600, "2y1d"), (7 * 365 * 86400 + 364 * 86400, "7y364d"), (8 * 365 * 86400, "8y"),
        (8 * 365 * 86400 + 2 * 3600, "8y"), (30 * 365 * 86400, "30y"),
        // Clock skew of up to a second reads as now; more is invalid.
        (-0.5, "0s"), (-1, "0s"), (-1.9, "0s"), (-2, "<invalid>"), (-3600, "<invalid>"),
    ] as [(Double, String)])
    func humanDuration(_ seconds: Double, _ text: String) {
        #expect(Printers.humanDuration(seconds) == text)
    }

    @Test func ageOfATimestamp() {
        #expect(Printers.age(rfc3339(printNow.addingTimeInterval(-300)), now: printNow) == "5m")
        #expect(Printers.age("2026-01-01T00:00:00.123456Z", now: Date(timeIntervalSince1970: 1_767_225_600 + 90)) == "89s")
        #expect(Printers.age(nil, now: printNow) == "<unknown>")
        #expect(Printers.age("yesterday", now: printNow) == "<unknown>")
    }
}

@Suite("API printers: Tables as kubectl get shows them")
struct APIPrinterTests {
    func pod(status: JSON, spec: JSON = ["containers": [["name": "c", "image": "busybox"]], "nodeName": "lab-worker"],
             deleting: Bool = false) -> JSON {
        var meta: JSON = ["name": "web", "namespace": "default", "creationTimestamp": ago(300), "uid": "u-1", "resourceVersion": "7"]
        if deleting { meta["deletionTimestamp"] = ago(1) }
        return ["kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": status]
    }

    @Test func aRunningReadyPod() {
        let p = pod(status: ["phase": "Running", "podIP": "10.244.1.5",
                             "conditions": [["type": "Ready", "status": "True"]],
                             "containerStatuses": [["name": "c", "ready": true, "restartCount": 0, "state": ["running": ["startedAt": ago(290)]]]]])
        #expect(printCells("pods", p) == ["web", "1/1", "Running", "0", "5m", "10.244.1.5", "lab-worker", "<none>", "<none>"])
    }

    @Test func aPendingUnscheduledPod() {
        let p = pod(status: ["phase": "Pending"], spec: ["containers": [["name": "a"], ["name": "b"]]])
        #expect(printCells("pods", p) == ["web", "0/2", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"])
    }

    @Test func aCrashLoopingContainerWithItsLastRestart() {
        let p = pod(status: ["phase": "Running", "podIP": "10.244.1.5",
                             "containerStatuses": [["name": "c", "ready": false, "restartCount": 4,
                                                    "state": ["waiting": ["reason": "CrashLoopBackOff", "message": "back-off 40s"]],
                                                    "lastState": ["terminated": ["exitCode": 1, "reason": "Error", "finishedAt": ago(30)]]]]])
        #expect(Array(printCells("pods", p)[1...3]) == ["0/1", "CrashLoopBackOff", "4 (30s ago)"])
    }

    @Test func restartsSumAllContainersAndShowTheLatestRestart() {
        let p = pod(status: ["phase": "Running",
                             "containerStatuses": [
                                ["name": "a", "ready": true, "restartCount": 1, "state": ["running": [:]],
                                 "lastState": ["terminated": ["exitCode": 1, "finishedAt": ago(3600)]]],
                                ["name": "b", "ready": true, "restartCount": 2, "state": ["running": [:]],
                                 "lastState": ["terminated": ["exitCode": 137, "finishedAt": ago(300)]]],
                             ]],
                    spec: ["containers": [["name": "a"], ["name": "b"]]])
        #expect(Array(printCells("pods", p)[1...3]) == ["2/2", "Running", "3 (5m ago)"])
    }

    @Test func terminatedContainersGiveTheirReasonOrExitCodeOrSignal() {
        func status(_ terminated: JSON) -> String {
            printCells("pods", pod(status: ["phase": "Failed", "containerStatuses": [["name": "c", "ready": false, "restartCount": 0,
                                                                                      "state": ["terminated": terminated]]]]))[2]
        }
        #expect(status(["exitCode": 0, "reason": "Completed"]) == "Completed")
        #expect(status(["exitCode": 1, "reason": "Error"]) == "Error")
        #expect(status(["exitCode": 3]) == "ExitCode:3")
        #expect(status(["exitCode": 137, "signal": 9]) == "Signal:9")
    }

    @Test func aCompletedSidecarBesideARunningContainer() {
        let cs: JSON = [["name": "a", "ready": true, "restartCount": 0, "state": ["running": [:]]],
                        ["name": "b", "ready": false, "restartCount": 0, "state": ["terminated": ["exitCode": 0, "reason": "Completed"]]]]
        let spec: JSON = ["containers": [["name": "a"], ["name": "b"]]]
        let ready = pod(status: ["phase": "Running", "containerStatuses": cs, "conditions": [["type": "Ready", "status": "True"]]], spec: spec)
        let notReady = pod(status: ["phase": "Running", "containerStatuses": cs, "conditions": [["type": "Ready", "status": "False"]]], spec: spec)
        #expect(printCells("pods", ready)[2] == "Running")
        #expect(printCells("pods", notReady)[2] == "NotReady")
    }

    @Test func initContainerStates() {
        let spec: JSON = ["initContainers": [["name": "init"]], "containers": [["name": "c"]]]
        func cells(_ initState: JSON, restarts: Int = 0, last: JSON? = nil) -> [String] {
            var ic: JSON = ["name": "init", "ready": false, "restartCount": .int(Int64(restarts)), "state": initState]
            if let last { ic["lastState"] = ["terminated": ["exitCode": 1, "reason": "Error", "finishedAt": last]] }
            return printCells("pods", pod(status: ["phase": "Pending", "initContainerStatuses": [ic],
                                                   "containerStatuses": [["name": "c", "ready": false, "restartCount": 0,
                                                                          "state": ["waiting": ["reason": "PodInitializing"]]]]], spec: spec))
        }
        #expect(Array(cells(["running": ["startedAt": ago(10)]])[1...3]) == ["0/1", "Init:0/1", "0"])
        #expect(cells(["waiting": ["reason": "PodInitializing"]])[2] == "Init:0/1")
        #expect(cells(["terminated": ["exitCode": 1, "reason": "Error"]])[2] == "Init:Error")
        #expect(cells(["terminated": ["exitCode": 2]])[2] == "Init:ExitCode:2")
        #expect(cells(["terminated": ["exitCode": 143, "signal": 15]])[2] == "Init:Signal:15")
        #expect(Array(cells(["waiting": ["reason": "CrashLoopBackOff"]], restarts: 2, last: ago(45))[2...3]) == ["Init:CrashLoopBackOff", "2 (45s ago)"])
        // Once every init container exited 0, the app containers decide.
        let done = printCells("pods", pod(status: ["phase": "Running",
                                                   "initContainerStatuses": [["name": "init", "ready": true, "restartCount": 0,
                                                                              "state": ["terminated": ["exitCode": 0, "reason": "Completed"]]]],
                                                   "containerStatuses": [["name": "c", "ready": true, "restartCount": 0, "state": ["running": [:]]]]],
                                          spec: spec))
        #expect(Array(done[1...2]) == ["1/1", "Running"])
    }

    @Test func theSecondOfTwoInitContainers() {
        let p = pod(status: ["phase": "Pending", "initContainerStatuses": [
            ["name": "i1", "ready": true, "restartCount": 0, "state": ["terminated": ["exitCode": 0, "reason": "Completed"]]],
            ["name": "i2", "ready": false, "restartCount": 0, "state": ["running": [:]]],
        ]], spec: ["initContainers": [["name": "i1"], ["name": "i2"]], "containers": [["name": "c"]]])
        #expect(printCells("pods", p)[2] == "Init:1/2")
    }

    @Test func aDeletedPodIsTerminating() {
        let p = pod(status: ["phase": "Running", "containerStatuses": [["name": "c", "ready": true, "restartCount": 0, "state": ["running": [:]]]]],
                    deleting: true)
        #expect(printCells("pods", p)[2] == "Terminating")
    }

    @Test func aDeletedPodThatAlreadySucceededKeepsItsStatus() {
        // printPod: `pod.DeletionTimestamp != nil && !IsPodPhaseTerminal(phase)`: a
        // Succeeded or Failed pod being deleted still shows Completed or Error.
        let p = pod(status: ["phase": "Succeeded", "containerStatuses": [["name": "c", "ready": false, "restartCount": 0,
                                                                         "state": ["terminated": ["exitCode": 0, "reason": "Completed"]]]]],
                    deleting: true)
        do {
            #expect(printCells("pods", p)[2] == "Completed")
        }
    }

    @Test func servicesPortsAndExternalIPs() {
        func svc(_ spec: JSON, status: JSON = [:]) -> JSON {
            ["kind": "Service", "metadata": ["name": "web", "namespace": "default", "creationTimestamp": ago(7200)], "spec": spec, "status": status]
        }
        let nodePort = svc(["type": "NodePort", "clusterIP": "10.96.0.20", "selector": ["app": "web", "tier": "fe"],
                            "ports": [["port": 80, "nodePort": 30080, "protocol": "TCP"], ["port": 53, "protocol": "UDP"]]])
        #expect(printCells("services", nodePort) == ["web", "NodePort", "10.96.0.20", "<none>", "80:30080/TCP,53/UDP", "120m", "app=web,tier=fe"])
        let lb = svc(["type": "LoadBalancer", "clusterIP": "10.96.0.21", "ports": [["port": 443, "nodePort": 31443, "protocol": "TCP"]]])
        #expect(Array(printCells("services", lb)[1...4]) == ["LoadBalancer", "10.96.0.21", "<pending>", "443:31443/TCP"])
        let lbIngress = svc(["type": "LoadBalancer", "clusterIP": "10.96.0.21", "ports": [["port": 443, "protocol": "TCP"]]],
                            status: ["loadBalancer": ["ingress": [["ip": "172.18.0.10"]]]])
        #expect(printCells("services", lbIngress)[3] == "172.18.0.10")
        let headless = svc(["type": "ClusterIP", "clusterIP": "None"])
        #expect(printCells("services", headless) == ["web", "ClusterIP", "None", "<none>", "<none>", "120m", "<none>"])
        let ext = svc(["type": "ExternalName", "externalName": "example.com"])
        #expect(Array(printCells("services", ext)[1...3]) == ["ExternalName", "<none>", "example.com"])
        let withExternal = svc(["type": "ClusterIP", "clusterIP": "10.96.0.22", "externalIPs": ["192.0.2.1", "192.0.2.2"],
                                "ports": [["port": 80, "protocol": "TCP"]]])
        #expect(printCells("services", withExternal)[3] == "192.0.2.1,192.0.2.2")
    }

    @Test func endpointsListTheFirstThreeAndCountTheRest() {
        func ep(_ subsets: JSON?) -> JSON {
            var o: JSON = ["kind": "Endpoints", "metadata": ["name": "web", "namespace": "default", "creationTimestamp": ago(60)]]
            if let subsets { o["subsets"] = subsets }
            return o
        }
        let four = ep([["addresses": [["ip": "a"], ["ip": "b"], ["ip": "c"], ["ip": "d"]], "ports": [["port": 80, "protocol": "TCP"]]]])
        #expect(printCells("endpoints", four) == ["web", "a:80,b:80,c:80 + 1 more...", "60s"])
        let two = ep([["addresses": [["ip": "10.244.1.2"], ["ip": "10.244.2.2"]], "ports": [["port": 8080]]]])
        #expect(printCells("endpoints", two)[1] == "10.244.1.2:8080,10.244.2.2:8080")
        // Two ports: each address once per port, counted as such.
        let twoPorts = ep([["addresses": [["ip": "a"], ["ip": "b"]], "ports": [["port": 80], ["port": 443]]]])
        #expect(printCells("endpoints", twoPorts)[1] == "a:80,b:80,a:443 + 1 more...")
        let headless = ep([["addresses": [["ip": "a"]]]])
        #expect(printCells("endpoints", headless)[1] == "a")
        #expect(printCells("endpoints", ep(nil))[1] == "<none>")
        #expect(printCells("endpoints", ep([]))[1] == "<none>")
    }

    @Test func eventsLastSeenTypeReasonObjectAndMessage() {
        let e: JSON = ["kind": "Event", "metadata": ["name": "web.1", "namespace": "default", "creationTimestamp": ago(300)],
                       "involvedObject": ["kind": "Pod", "name": "web", "namespace": "default", "fieldPath": "spec.containers{c}"],
                       "reason": "BackOff", "type": "Warning", "message": " Back-off restarting failed container \n",
                       "firstTimestamp": ago(300), "lastTimestamp": ago(120), "count": 3,
                       "source": ["component": "kubelet", "host": "lab-worker"]]
        let cells = printCells("events", e)
        #expect(Array(cells[1...4]) == ["Warning", "BackOff", "pod/web", "spec.containers{c}"])
        #expect(cells[5] == "kubelet, lab-worker")
        #expect(cells[6] == "Back-off restarting failed container")
        #expect(Array(cells[7...9]) == ["5m", "3", "web.1"])
        let once: JSON = ["kind": "Event", "metadata": ["name": "web.2"], "involvedObject": ["kind": "Pod", "name": "web"],
                          "reason": "Pulled", "type": "Normal", "message": "ok", "firstTimestamp": ago(30), "lastTimestamp": ago(30), "count": 1]
        #expect(printCells("events", once)[0] == "30s")
        // Only eventTime (events.k8s.io style): the ages come from it.
        let series: JSON = ["kind": "Event", "metadata": ["name": "web.3"], "involvedObject": ["kind": "Pod", "name": "web"],
                            "reason": "Pulled", "type": "Normal", "message": "ok", "eventTime": ago(90), "reportingComponent": "kubelet"]
        #expect(printCells("events", series)[0] == "90s")
        #expect(printCells("events", series)[5] == "kubelet")
    }

    @Test func anEventsLastSeenIsItsLastTimestampAlone() {
        // printEvent puts lastTimestamp's age alone in LAST SEEN and the count in COUNT
        // (a wide column); "2m (x3 over 5m)" is how `kubectl describe` and `kubectl
        // events` word it, never a cell of the apiserver's Table.
        let e: JSON = ["kind": "Event", "metadata": ["name": "web.1", "namespace": "default"],
                       "involvedObject": ["kind": "Pod", "name": "web"], "reason": "BackOff", "type": "Warning", "message": "m",
                       "firstTimestamp": ago(300), "lastTimestamp": ago(120), "count": 3]
        let lastSeen = printCells("events", e)[0]
        #expect(lastSeen.hasPrefix("2m"))
        do {
            #expect(lastSeen == "2m")
        }
    }

    @Test func nodesStatusRolesAndWideColumns() {
        func node(_ labels: [String: String], ready: String?, unschedulable: Bool = false) -> JSON {
            var o: JSON = ["kind": "Node", "metadata": ["name": "lab-control-plane", "creationTimestamp": ago(3 * 86400), "labels": .strings(labels)],
                           "spec": unschedulable ? ["unschedulable": true] : [:],
                           "status": ["addresses": [["type": "InternalIP", "address": "172.18.0.2"], ["type": "Hostname", "address": "lab-control-plane"]],
                                      "nodeInfo": ["kubeletVersion": "v1.32.0-minik", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                                   "kernelVersion": "6.1.0", "containerRuntimeVersion": "minik://0.11.0"]]]
            if let ready { o["status"]?["conditions"] = [["type": "MemoryPressure", "status": "False"], ["type": "Ready", "status": .string(ready)]] }
            return o
        }
        let cp = node(["node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "lab-control-plane"], ready: "True")
        #expect(printCells("nodes", cp) == ["lab-control-plane", "Ready", "control-plane", "3d", "v1.32.0-minik", "172.18.0.2", "<none>",
                                            "Debian GNU/Linux 12 (bookworm)", "6.1.0", "minik://0.11.0"])
        let worker = node(["kubernetes.io/hostname": "lab-worker"], ready: "False", unschedulable: true)
        #expect(Array(printCells("nodes", worker)[1...2]) == ["NotReady,SchedulingDisabled", "<none>"])
        let two = node(["node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/ingress": "", "node-role.kubernetes.io/": ""], ready: "True")
        #expect(printCells("nodes", two)[2] == "ingress,worker")
        #expect(printCells("nodes", node([:], ready: nil))[1] == "Unknown")
    }

    @Test func deploymentsAndReplicaSets() {
        let spec: JSON = ["replicas": 3, "selector": ["matchLabels": ["app": "web"], "matchExpressions": [["key": "tier", "operator": "In", "values": ["fe", "be"]]]],
                          "template": ["spec": ["containers": [["name": "a", "image": "a:1"], ["name": "b", "image": "b:1"]]]]]
        let d: JSON = ["kind": "Deployment", "metadata": ["name": "web", "creationTimestamp": ago(86400)], "spec": spec,
                       "status": ["replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2]]
        #expect(printCells("deployments", d) == ["web", "2/3", "3", "2", "24h", "a,b", "a:1,b:1", "app=web,tier in (be,fe)"])
        let rs: JSON = ["kind": "ReplicaSet", "metadata": ["name": "web-abc", "creationTimestamp": ago(86400)], "spec": spec,
                        "status": ["replicas": 3, "readyReplicas": 1]]
        #expect(printCells("replicasets", rs) == ["web-abc", "3", "3", "1", "24h", "a,b", "a:1,b:1", "app=web,tier in (be,fe)"])
        // The integer columns are integers in the Table.
        let t = Printers.table("replicasets", objects: [rs], revision: nil, now: printNow)
        #expect(t["rows"]?.array?.first?["cells"]?.array?[1] == .int(3))
    }

    @Test func namespacesAndConfigMapsAndOthers() {
        let ns: JSON = ["kind": "Namespace", "metadata": ["name": "default", "creationTimestamp": ago(600)], "status": ["phase": "Active"]]
        #expect(printCells("namespaces", ns) == ["default", "Active", "10m"])
        let cm: JSON = ["kind": "ConfigMap", "metadata": ["name": "conf", "creationTimestamp": ago(5)], "data": ["a": "1", "b": "2"], "binaryData": ["c": "AA=="]]
        #expect(printCells("configmaps", cm) == ["conf", "3", "5s"])
        let sa: JSON = ["kind": "ServiceAccount", "metadata": ["name": "default", "creationTimestamp": ago(5)]]
        #expect(printCells("serviceaccounts", sa) == ["default", "5s"])
    }

    @Test func columnDefinitionsMarkWideColumnsWithPriority1() {
        let t = Printers.table("pods", objects: [], revision: 12, now: printNow)
        #expect(t["kind"] == "Table")
        #expect(t["apiVersion"] == "meta.k8s.io/v1")
        #expect(t[path: "metadata", "resourceVersion"] == "12")
        let cols = t["columnDefinitions"]?.array ?? []
        #expect(cols.compactMap { $0["name"]?.string } == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"])
        #expect(cols.compactMap { $0["priority"]?.int } == [0, 0, 0, 0, 0, 1, 1, 1, 1])
        #expect(cols.first?["format"] == "name")
        #expect(t["rows"] == [])
        for resource in ["nodes", "services", "deployments", "replicasets", "events"] {
            let c = Printers.table(resource, objects: [], revision: nil, now: printNow)["columnDefinitions"]?.array ?? []
            #expect(c.contains { $0["priority"] == 1 }, "\(resource) has wide columns")
            #expect(c.contains { $0["priority"] == 0 })
        }
        // Every row has one cell per column.
        let p = pod(status: ["phase": "Running"])
        #expect(printCells("pods", p).count == cols.count)
        #expect(Printers.table("services", objects: [], revision: nil, now: printNow)["columnDefinitions"]?.array?.map { $0["name"]?.string ?? "" }
            == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"])
    }

    @Test func rowsCarryPartialObjectMetadataTheObjectOrNothing() {
        let p = pod(status: ["phase": "Running"])
        let meta = Printers.table("pods", objects: [p], revision: nil, now: printNow)["rows"]?.array?.first?["object"]
        #expect(meta?["kind"] == "PartialObjectMetadata")
        #expect(meta?["apiVersion"] == "meta.k8s.io/v1")
        #expect(meta?["metadata"] == p["metadata"])
        #expect(meta?["spec"] == nil)
        let full = Printers.table("pods", objects: [p], revision: nil, now: printNow, includeObject: "Object")["rows"]?.array?.first?["object"]
        #expect(full == p)
        let none = Printers.table("pods", objects: [p], revision: nil, now: printNow, includeObject: "None")["rows"]?.array?.first
        #expect(none?["object"] == nil)
        #expect(none?["cells"]?.array?.count == 9)
    }

    @Test func aTableCarriesTheListsContinueToken() {
        let t = Printers.table("pods", objects: [], revision: 3, now: printNow, withColumns: false, continueToken: "abc", remaining: 4)
        #expect(t["metadata"] == ["resourceVersion": "3", "continue": "abc", "remainingItemCount": 4])
        #expect(t["columnDefinitions"] == [])
    }
}
