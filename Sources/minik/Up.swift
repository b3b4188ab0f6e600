import ArgumentParser
import CMinik
import Foundation
import MinikRuntime
import MinikSpec
import MinikSupervisor
import MinikAPIServer

struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a cluster from a spec file and start its supervisor.")

    @Argument(help: "The spec file (kind Cluster config, MinikConfig, Pods, Deployments).")
    var file: String

    @Flag(name: .shortAndLong, help: "Print nothing but errors.")
    var quiet = false

    func run() throws {
        let spec = try loadSpec(file)
        try requireRoot("minik up")
        let dir = Naming.clusterDir(spec.name)
        do { try NetNamespace.prepareDirectory() } catch { throw CLIError("\(error)") }
        // One operation per cluster: a `down` started now waits until this one is done,
        // and this one waits for a `down` (or `up`) already running, then sees what it left.
        guard let lock = ClusterLock.acquire(spec.name, wait: 60, waiting: {
            printErr("waiting for another minik command on cluster \"\(spec.name)\" to finish ...")
        }) else {
            throw CLIError("cluster \"\(spec.name)\" is still busy with another minik command after a minute; try again when it is done")
        }
        // A refusal changes nothing: every check comes before the first thing made.
        if FileManager.default.fileExists(atPath: dir) && !FileManager.default.fileExists(atPath: Naming.stateFile(spec.name))
            && ControlSocket.call(path: Naming.socketPath(spec.name), ControlRequest(op: .ping), timeout: 2) == nil
            && ClusterRuntime.preflight(cluster: spec.name) == nil {
            // What an `up` killed before it started its supervisor leaves: a directory with
            // the spec and nothing else (we hold the lock: no other `up` is under way).
            try? FileManager.default.removeItem(atPath: dir)
        }
        if FileManager.default.fileExists(atPath: dir) {
            if let old = try? ClusterState.load(cluster: spec.name), !Supervisor.isRunning(old) {
                // Its supervisor died: a new one takes the running cluster over.
                if !quiet { print("Cluster \"\(spec.name)\" runs without its supervisor (gone since \(Supervisor.lastSeen(old))); adopting it ...") }
                switch startSupervisor(spec: old.spec, specCopy: old.specFile, lock: lock, adopt: true) {
                case .ready:
                    mergeKubeconfig(spec.name, quiet: quiet)
                    if !quiet { print("Cluster \"\(spec.name)\" is supervised again. Changes to \(file) since it was made need `minik apply -f \(file)`.") }
                    return
                case .failed, .interrupted: throw ExitCode.failure
                }
            }
            lock.release()
            throw CLIError("cluster \"\(spec.name)\" exists already; remove it with `minik down --name \(spec.name)` or choose another name")
        }
        if let why = ClusterRuntime.preflight(cluster: spec.name) {
            lock.release()
            throw CLIError(why)
        }
        if mkdir(dir, 0o700) != 0 {
            let e = errno
            lock.release()
            throw CLIError("cannot create \(dir): \(String(cString: strerror(e)))")
        }
        let specCopy = "\(dir)/spec.yaml"
        do {
            try FileManager.default.copyItem(atPath: file, toPath: specCopy)
        } catch {
            try? FileManager.default.removeItem(atPath: dir)
            lock.release()
            throw CLIError("cannot copy the spec into \(dir): \(error)")
        }
        if !quiet { print("Creating cluster \"\(spec.name)\" ...") }
        switch startSupervisor(spec: spec, specCopy: specCopy, lock: lock) {
        case .ready: break
        case .failed: throw ExitCode.failure
        case .interrupted: throw ExitCode(130)
        }
        let context = mergeKubeconfig(spec.name, quiet: quiet)
        if !quiet {
            if let context {
                print("Set kubectl context to \"\(context)\"")
                print("You can now use your cluster with:\n\nkubectl cluster-info --context \(context)\n")
            }
            print("Cluster \"\(spec.name)\" is up. Try:")
            print("  minik get nodes -o wide")
            print("  minik get pods -A -o wide")
            if let p = spec.pods.first(where: { $0.namespace != ClusterDNS.namespace }) {
                print("  minik exec \(p.namespace == "default" ? "" : "-n \(p.namespace) ")\(p.name) -- ip addr")
                if let dns = spec.dnsServiceIP {
                    print("  minik exec \(p.namespace == "default" ? "" : "-n \(p.namespace) ")\(p.name) -- nslookup kubernetes.default.svc.\(spec.dns.clusterDomain)    # cluster DNS at \(dns)")
                }
            }
            if !spec.services.isEmpty { print("  minik get svc -A; minik get endpoints -A") }
            for n in spec.nodes { for m in n.extraPortMappings where m.proto == "TCP" { print("  curl http://127.0.0.1:\(m.hostPort)/    # -> \(n.name):\(m.containerPort)") } }
        }
    }

    enum Outcome { case ready, failed, interrupted }

    /// Starts `minik __supervise` detached, hands it the cluster's lock (as its stdin) and
    /// relays its progress until it is ready. Ctrl-C (or SIGTERM, SIGHUP) asks it to stop
    /// and roll back; if this process is killed instead, the supervisor finishes the
    /// cluster on its own (or rolls back a failure) and serves it.
    func startSupervisor(spec: ClusterSpec, specCopy: String, lock: ClusterLock, adopt: Bool = false) -> Outcome {
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        fds.forEach { _ = fcntl($0, F_SETFD, FD_CLOEXEC) }
        let log = open(Naming.logFile(spec.name), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var attr = Sandbox.spawnAttributes()
        attr.stdin_fd = lock.fd
        attr.stdout_fd = fds[1]
        attr.stderr_fd = log
        attr.new_session = 1
        let env = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        let pid = Sandbox.spawn(path: exe, argv: [exe, "__supervise", "--name", spec.name, "--spec", specCopy] + (adopt ? ["--adopt"] : []),
                                env: env, attr: &attr)
        close(fds[1])
        close(log)
        if pid < 0 {
            printErr("error: cannot start the supervisor: \(String(cString: strerror(-pid)))")
            Teardown.destroy(cluster: spec.name)
            lock.release()
            return .failed
        }
        let interrupted = Interruption(forwardingTo: pid) { [quiet] in
            if !quiet { printErr("interrupted: removing what was created ...") }
        }
        var buffer = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        var ready = false
        var failed: String?
        var refused = false
        reading: while true {
            let n = read(fds[0], &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            buffer += chunk[0..<n]
            while let nl = buffer.firstIndex(of: 0x0a) {
                let line = String(decoding: buffer[..<nl], as: UTF8.self)
                buffer.removeSubrange(...nl)
                if line.hasPrefix("progress: ") {
                    let text = line.dropFirst("progress: ".count)
                    if !quiet { print((text.hasPrefix("failed: ") ? " ✗ " : " ✓ ") + text) }
                } else if line == "ready" {
                    ready = true
                    break reading
                } else if line.hasPrefix("error: ") {
                    failed = String(line.dropFirst("error: ".count))
                } else if line.hasPrefix("refused: ") {
                    failed = String(line.dropFirst("refused: ".count))
                    refused = true
                }
            }
        }
        close(fds[0])
        interrupted.stop()
        if ready {
            // The supervisor holds the lock now; it lets go once it serves.
            lock.close()
            if interrupted.happened { printErr("the cluster was ready before the interrupt arrived: it is up") }
            return .ready
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if interrupted.happened {
            printErr("interrupted: cluster \"\(spec.name)\" was not created")
        } else if let failed {
            printErr("error: \(failed)")
        } else {
            let tail = (try? String(contentsOfFile: Naming.logFile(spec.name), encoding: .utf8))?.split(separator: "\n").suffix(5).joined(separator: "\n") ?? ""
            printErr("error: the supervisor exited before the cluster was ready\(tail.isEmpty ? "" : ":\n\(tail)")")
        }
        if adopt {
            // The cluster was running before: leave it to `down`, whatever happened.
            printErr("the cluster is left as it is; `minik down --name \(spec.name)` removes it")
        } else if refused {
            // Nothing was made but the directory this command made.
            try? FileManager.default.removeItem(atPath: Naming.clusterDir(spec.name))
            NetNamespace.releaseDirectoryIfIdle()
        } else {
            // Whatever the supervisor made and did not remove, remove now.
            Teardown.destroy(cluster: spec.name)
        }
        lock.release()
        return interrupted.happened ? .interrupted : .failed
    }
}

/// SIGINT, SIGTERM and SIGHUP while `up` waits: passed to the supervisor as SIGTERM (it
/// stops at its next step and rolls back), once.
final class Interruption: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private let lock = NSLock()
    private var _happened = false
    var happened: Bool { lock.lock(); defer { lock.unlock() }; return _happened }

    init(forwardingTo pid: pid_t, onFirst: @escaping @Sendable () -> Void) {
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [self] in
                lock.lock()
                let first = !_happened
                _happened = true
                lock.unlock()
                if first { onFirst() }
                kill(pid, SIGTERM)
            }
            s.resume()
            sources.append(s)
        }
    }

    func stop() {
        sources.forEach { $0.cancel() }
        for sig in [SIGINT, SIGTERM, SIGHUP] { signal(sig, SIG_DFL) }
    }
}

func printErr(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

struct Supervise: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "__supervise", abstract: "Run a cluster's supervisor (started by `minik up`).", shouldDisplay: false)

    @Option var name: String
    @Option var spec: String
    @Flag(help: "Adopt the running cluster (its supervisor died) instead of building it.") var adopt = false

    func run() throws {
        // `up` hands over the cluster's lock as our stdin; started otherwise, take it here.
        guard let lock = ClusterLock.inherited(name, fd: 0) ?? ClusterLock.acquire(name) else {
            print("refused: another minik command is working on cluster \(name)")
            throw ExitCode.failure
        }
        if adopt {
            guard let old = try? ClusterState.load(cluster: name), !Supervisor.isRunning(old) else {
                print("refused: cluster \(name) has no state to adopt, or its supervisor runs")
                lock.release()
                throw ExitCode.failure
            }
            let runtime: ClusterRuntime
            do { runtime = try ClusterRuntime(spec: old.spec, specFile: old.specFile) } catch {
                print("error: \(error)")
                lock.release()
                throw ExitCode.failure
            }
            Supervisor(runtime: runtime, progress: 1, lock: lock).run(adopting: old)
        }
        if let why = ClusterRuntime.preflight(cluster: name) {
            print("refused: \(why)")
            lock.release()
            throw ExitCode.failure
        }
        let s: ClusterSpec
        do { s = try SpecLoader.load(path: spec) } catch {
            print("error: \(error)")
            throw ExitCode.failure
        }
        guard s.name == name else {
            print("error: spec names cluster \(s.name), not \(name)")
            throw ExitCode.failure
        }
        let runtime: ClusterRuntime
        do { runtime = try ClusterRuntime(spec: s, specFile: spec) } catch {
            print("error: \(error)")
            Teardown.destroy(cluster: name)
            throw ExitCode.failure
        }
        Supervisor(runtime: runtime, progress: 1, lock: lock).run()
    }
}

/// Merges the cluster's kubeconfig into the user's ($KUBECONFIG or ~/.kube/config) and
/// returns the context's name; a failure is a warning (the cluster is up all the same).
@discardableResult
func mergeKubeconfig(_ cluster: String, quiet: Bool) -> String? {
    let path = Kubeconfig.userPath()
    guard let text = try? String(contentsOfFile: Naming.kubeconfigFile(cluster), encoding: .utf8) else {
        printErr("warning: cluster \(cluster) has no kubeconfig (\(Naming.kubeconfigFile(cluster)))")
        return nil
    }
    do { try Kubeconfig.merge(text, into: path) } catch {
        printErr("warning: \(error); `minik get kubeconfig --name \(cluster)` prints the cluster's")
        return nil
    }
    return Kubeconfig.contextName(cluster)
}

struct Down: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a cluster: every process, namespace, link and mount it made.")

    @OptionGroup var cluster: ClusterOption

    @Flag(help: "Delete every cluster that is up.") var all = false

    func run() throws {
        try requireRoot("minik down")
        let names = all ? ClusterOption.clusters() : [try cluster.name ?? cluster.resolve()]
        for name in names {
            // An `up` of this cluster still running: wait for it, then remove what it made.
            guard let lock = ClusterLock.acquire(name, wait: 300, waiting: {
                printErr("waiting for another minik command on cluster \"\(name)\" to finish ...")
            }) else {
                throw CLIError("cluster \"\(name)\" is still busy with another minik command after 5 minutes")
            }
            defer { lock.release() }
            let exists = FileManager.default.fileExists(atPath: Naming.clusterDir(name))
            if !exists && ClusterRuntime.preflight(cluster: name) == nil {
                let up = ClusterOption.clusters()
                throw CLIError("no cluster named \"\(name)\" is up\(up.isEmpty ? "" : " (up: \(up.joined(separator: ", ")))")")
            }
            let started = Date()
            var how = "by its supervisor"
            if let r = ControlSocket.call(path: Naming.socketPath(name), ControlRequest(op: .down), timeout: 30), r.ok {
                // The supervisor removed everything and exits.
            } else {
                how = "without a supervisor"
                var known: [(Int32, UInt64)] = []
                if let state = try? ClusterState.load(cluster: name) {
                    if Sandbox.isAlive(state.supervisorPID, startTime: state.supervisorStartTime) {
                        kill(state.supervisorPID, SIGKILL)
                    }
                    known = state.pods.map { ($0.pid, $0.startTime) }
                }
                Teardown.destroy(cluster: name, knownPIDs: known)
            }
            // Whatever is left (nothing, normally) goes too.
            Teardown.destroy(cluster: name)
            let kubeconfig = Kubeconfig.userPath()
            do { try Kubeconfig.remove(cluster: name, from: kubeconfig) } catch { printErr("warning: \(error)") }
            let ms = Int(Date().timeIntervalSince(started) * 1000)
            print("Deleted cluster \"\(name)\" (\(how), \(ms) ms)")
        }
    }
}
