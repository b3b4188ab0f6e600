import ArgumentParser
import CMinik
import Foundation
import MinikRuntime
import MinikSpec
import MinikSupervisor

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
        if mkdir(dir, 0o700) != 0 {
            if errno == EEXIST {
                throw CLIError("cluster \"\(spec.name)\" exists already; remove it with `minik down --name \(spec.name)` or choose another name")
            }
            throw CLIError("cannot create \(dir): \(String(cString: strerror(errno)))")
        }
        let specCopy = "\(dir)/spec.yaml"
        do {
            try FileManager.default.copyItem(atPath: file, toPath: specCopy)
        } catch {
            try? FileManager.default.removeItem(atPath: dir)
            throw CLIError("cannot copy the spec into \(dir): \(error)")
        }
        if !quiet { print("Creating cluster \"\(spec.name)\" ...") }
        let ok = startSupervisor(spec: spec, specCopy: specCopy)
        if !ok { throw ExitCode.failure }
        if !quiet {
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

    /// Starts `minik __supervise` detached and relays its progress; true once it is ready.
    func startSupervisor(spec: ClusterSpec, specCopy: String) -> Bool {
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        fds.forEach { _ = fcntl($0, F_SETFD, FD_CLOEXEC) }
        let log = open(Naming.logFile(spec.name), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var attr = Sandbox.spawnAttributes()
        attr.stdout_fd = fds[1]
        attr.stderr_fd = log
        attr.new_session = 1
        let env = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        let pid = Sandbox.spawn(path: exe, argv: [exe, "__supervise", "--name", spec.name, "--spec", specCopy], env: env, attr: &attr)
        close(fds[1])
        close(log)
        if pid < 0 {
            printErr("error: cannot start the supervisor: \(String(cString: strerror(-pid)))")
            Teardown.destroy(cluster: spec.name)
            return false
        }
        let reader = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        var buffer = Data()
        var ready = false
        var failed: String?
        while true {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
            while let nl = buffer.firstIndex(of: 0x0a) {
                let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...nl)
                if line.hasPrefix("progress: ") {
                    if !quiet { print(" ✓ " + line.dropFirst("progress: ".count)) }
                } else if line == "ready" {
                    ready = true
                } else if line.hasPrefix("error: ") {
                    failed = String(line.dropFirst("error: ".count))
                }
            }
            if ready { break }
        }
        if ready { return true }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        if let failed {
            printErr("error: \(failed)")
        } else {
            let tail = (try? String(contentsOfFile: Naming.logFile(spec.name), encoding: .utf8))?.split(separator: "\n").suffix(5).joined(separator: "\n") ?? ""
            printErr("error: the supervisor exited before the cluster was ready\(tail.isEmpty ? "" : ":\n\(tail)")")
        }
        // Whatever the supervisor made and did not remove, remove now.
        Teardown.destroy(cluster: spec.name)
        return false
    }
}

func printErr(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

struct Supervise: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "__supervise", abstract: "Run a cluster's supervisor (started by `minik up`).", shouldDisplay: false)

    @Option var name: String
    @Option var spec: String

    func run() throws {
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
        Supervisor(runtime: runtime, progress: FileHandle.standardOutput).run()
    }
}

struct Down: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a cluster: every process, namespace, link and mount it made.")

    @OptionGroup var cluster: ClusterOption

    @Flag(help: "Delete every cluster that is up.") var all = false

    func run() throws {
        try requireRoot("minik down")
        let names = all ? ClusterOption.clusters() : [try cluster.resolve()]
        for name in names {
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
            let ms = Int(Date().timeIntervalSince(started) * 1000)
            print("Deleted cluster \"\(name)\" (\(how), \(ms) ms)")
        }
    }
}
