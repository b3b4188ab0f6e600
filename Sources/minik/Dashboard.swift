// `minik dashboard`: the URL of the cluster's dashboard (served by its supervisor on
// 127.0.0.1, with a token of its own).
import ArgumentParser
import Foundation
import MinikRuntime
import MinikSupervisor

struct DashboardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Print the URL of the cluster's dashboard: the live topology, pods coloured by state, a click traces a path.")

    @OptionGroup var cluster: ClusterOption

    func run() throws {
        try requireRoot("minik dashboard", because: "its URL carries the dashboard's token, readable by root only")
        let name = try cluster.resolve()
        guard ControlSocket.call(path: Naming.socketPath(name), ControlRequest(op: .status), timeout: 5)?.ok == true else {
            throw CLIError("the supervisor of cluster \(name) is not running, and it serves the dashboard: `minik up` the spec again to adopt the cluster")
        }
        guard let url = try? String(contentsOfFile: ClusterAPI.dashboardFile(name), encoding: .utf8) else {
            throw CLIError("cluster \(name) has no dashboard URL yet (its supervisor writes it when it starts)")
        }
        print(url.trimmingCharacters(in: .whitespacesAndNewlines))
        printErr("open it in a browser on this machine (it listens on 127.0.0.1 only); add #trace=POD,POD_OR_svc/NAME[,PORT] to trace at once")
    }
}
