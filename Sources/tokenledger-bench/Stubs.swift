import ArgumentParser
struct RenewalBench: ParsableCommand, Scenario {
    static let name = "renewal"
    @OptionGroup var options: CommonOptions
    func run() throws { try runAlone(options) }
    func run(_ context: Context) throws {}
}
struct QueriesBench: ParsableCommand, Scenario {
    static let name = "queries"
    @OptionGroup var options: CommonOptions
    func run() throws { try runAlone(options) }
    func run(_ context: Context) throws {}
}
