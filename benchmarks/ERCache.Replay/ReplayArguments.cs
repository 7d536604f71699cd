using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Parsing;
using System.Globalization;
using ERCache.Replay.Replay;

namespace ERCache.Replay;

/// <summary>A command line the harness cannot act on; the message says which option and why.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>The parsed command line: the options are declared once, with System.CommandLine, which also writes
/// <c>--help</c>.</summary>
internal sealed class ReplayArguments
{
    private static readonly Option<string?> TraceOption = new("--trace") { Description = "CSV trace: header, then ts,user[,model][,fail] (ts: integer ms, non-decreasing)", HelpName = "FILE.csv" };
    private static readonly Option<string?> ScarabOption = new("--scarab") { Description = "Scarab key trace: big-endian int64 keys, gzipped or not (needs --rate)", HelpName = "FILE[.gz]" };
    private static readonly Option<double?> RateOption = new("--rate") { Description = "Requests per second of a --scarab trace", CustomParser = r => Number(r, positive: true) };
    private static readonly Option<bool> SyntheticOption = new("--synthetic") { Description = "Seeded generator matching 52% of same-user gaps within 1 min, 76% within 10 min" };
    private static readonly Option<int> UsersOption = new("--users") { Description = "Synthetic users", DefaultValueFactory = _ => 50_000, CustomParser = r => Integer(r, 1) };
    private static readonly Option<TimeSpan> DurationOption = new("--duration") { Description = "Synthetic trace length", DefaultValueFactory = _ => TimeSpan.FromHours(6), CustomParser = ParseDuration };
    private static readonly Option<string[]> ModelsOption = new("--models") { Description = "Synthetic models, comma-separated", DefaultValueFactory = _ => ["model"], Arity = ArgumentArity.ExactlyOne, CustomParser = List };
    private static readonly Option<double> FailureRateOption = new("--failure-rate") { Description = "Share of synthetic requests whose inference fails, 0..1", CustomParser = ParseFailureRate };
    private static readonly Option<(TimeSpan Start, TimeSpan Length)[]> OutageOption = new("--outage") { Description = "Synthetic outage START+LENGTH, e.g. 2h+10m (repeatable)", CustomParser = ParseOutages };
    private static readonly Option<bool> StationaryOption = new("--stationary") { Description = "Synthetic users are all active from the start, so the request rate is flat (by default each user starts at a random time and the rate grows)" };
    private static readonly Option<int> SeedOption = new("--seed") { Description = "Generator and routing seed", DefaultValueFactory = _ => 1, CustomParser = r => Integer(r, int.MinValue) };
    private static readonly Option<string?> WriteTraceOption = new("--write-trace") { Description = "Write the synthetic trace as CSV", HelpName = "FILE.csv" };
    private static readonly Option<string?> ConfigOption = new("--config") { Description = "The library's own ERCache section (an absent Capacity means unbounded)", HelpName = "appsettings.json" };
    private static readonly Option<string?> ModelOption = new("--model") { Description = "Model name when the trace names none [default: model]" };
    private static readonly Option<int?> DimensionsOption = new("--dimensions") { Description = "Vector length [default: 64]", CustomParser = r => Integer(r, 1) };
    private static readonly Option<TimeSpan?> DirectTtlOption = new("--direct-ttl") { Description = "Direct TTL [default: 1m]", CustomParser = r => ParseDuration(r) };
    private static readonly Option<TimeSpan?> FailoverTtlOption = new("--failover-ttl") { Description = "Failover TTL [default: 1h]", CustomParser = r => ParseDuration(r) };
    private static readonly Option<int?> CapacityOption = new("--capacity") { Description = "Entries per tier [default: unbounded]", CustomParser = r => Integer(r, 1) };
    private static readonly Option<string?> EvictionOption = new("--eviction") { Description = "Direct eviction: Lru, Fifo, Sieve or MemoryCache [default: Lru]" };
    private static readonly Option<string?> FailoverEvictionOption = new("--failover-eviction") { Description = "Failover eviction [default: Fifo]" };
    private static readonly Option<string?> FormatOption = new("--format") { Description = "Storage format: Float32, Float16 or Int8 [default: Float32]" };
    private static readonly Option<string?> JsonOption = new("--json") { Description = "Write the result as JSON", HelpName = "FILE" };
    private static readonly Option<TimeSpan[]?> SweepTtlOption = new("--sweep-ttl") { Description = "One replay per direct TTL, e.g. 10s,30s,1m; table and SVG", Arity = ArgumentArity.ExactlyOne, CustomParser = ParseDurations };
    private static readonly Option<int[]?> SweepCapacityOption = new("--sweep-capacity") { Description = "Hit rate per capacity for every eviction strategy; table and SVG (default capacities: 1%..50% of distinct users)", Arity = ArgumentArity.ZeroOrOne, CustomParser = ParseCapacities };
    private static readonly Option<string?> SvgOption = new("--svg") { Description = "Where a sweep writes its chart [default: ttl-sweep.svg or capacity-sweep.svg]", HelpName = "FILE" };
    private static readonly Option<int> HostsOption = new("--hosts") { Description = "Independent caches; without --routing, compares 1 host, N random and N sticky", DefaultValueFactory = _ => 1, CustomParser = r => Integer(r, 1) };
    private static readonly Option<Replay.Routing?> RoutingOption = new("--routing") { Description = "random or sticky", CustomParser = ParseRouting };
    private static readonly Option<int> ThreadsOption = new("--threads") { Description = "Replay users on N threads when the result is the same as on one (no tier can fill); otherwise one, saying why", DefaultValueFactory = _ => Environment.ProcessorCount, CustomParser = r => Integer(r, 1) };
    private static readonly Option<TimeSpan> WarmupOption = new("--warmup") { Description = "Before timing, replay the first requests through throwaway caches until the JIT settles, for at most this long (0: none)", DefaultValueFactory = _ => TimeSpan.FromSeconds(10), CustomParser = r => r.Tokens.Single().Value.Trim() == "0" ? TimeSpan.Zero : ParseDuration(r) };

    private static readonly Option<double?> DriftOption = new("--drift") { Description = "Users' embeddings move over time: RATE is the expected drift (1 - cosine) between vectors an hour apart, 0..1; reports the drift of served vectors", HelpName = "RATE", CustomParser = r => Fraction(r) };
    private static readonly Option<double?> RefreshAheadOption = new("--refresh-ahead") { Description = "Refresh ahead: a direct hit older than this fraction of the direct TTL (0..1) is refreshed in the background", HelpName = "F", CustomParser = r => Fraction(r) };
    private static readonly Option<bool> RecommendTtlOption = new("--recommend-ttl") { Description = "Per model, the longest direct TTL whose p99 drift stays under --max-drift (TTLs from --sweep-ttl, or 10s..1h); needs --drift" };
    private static readonly Option<double?> MaxDriftOption = new("--max-drift") { Description = "The p99 drift --recommend-ttl allows", HelpName = "X", CustomParser = r => Number(r, positive: true) };

    private static readonly Option<string?> RegionalOption = new("--regional") { Description = "Hosts share a regional store: memory (in this process, for fast sweeps) or redis=HOST:PORT (Redis or Garnet; entries are written under a version of this run's own)", Validators = { CheckRegional } };

    private static readonly Option<int?> MaxConcurrencyOption = new("--max-concurrency") { Description = "Inference:MaxConcurrency: tower calls a host runs at once [default: the library's, 8]", CustomParser = r => Integer(r, 1) };
    private static readonly Option<int?> MaxBatchOption = new("--max-batch") { Description = "Inference:MaxBatchSize: users per tower call at most [default: the library's, 64]", CustomParser = r => Integer(r, 1) };
    private static readonly Option<TimeSpan?> TimeoutOption = new("--timeout") { Description = "Inference:Timeout: a request's inference deadline [default: the library's, 100ms]", CustomParser = r => ParseDuration(r) };

    private static readonly Option<string[]> EventOption = new("--event") { Description = $"An event of the timeline (repeatable): {ReplayEvent.Syntax}; e.g. version@3h, version@3h+10m (rolled host by host), restart@3h:2, delete@3h:1%, outage@2h+5m", HelpName = "EVENT" };
    private static readonly Option<double?> ProvisionOption = new("--provision") { Description = "Finite towers: each host's throughput is X times the steady demand measured first with unbounded towers and no events (the mean inference rate per host in the 30 minutes before the first event, or over the trace)", HelpName = "X", CustomParser = r => Number(r, positive: true) };
    private static readonly Option<double?> ThroughputOption = new("--tower-throughput") { Description = "Finite towers: users per second each host's tower serves with full batches", HelpName = "N", CustomParser = r => Number(r, positive: true) };
    private static readonly Option<TimeSpan?> UserCostOption = new("--user-cost") { Description = "Finite towers: the time a tower call spends per user", CustomParser = r => ParseDuration(r) };
    private static readonly Option<TimeSpan?> CallCostOption = new("--call-cost") { Description = "The fixed time of every tower call (0: none) [default: 2ms]", CustomParser = r => r.Tokens.Single().Value.Trim() == "0" ? TimeSpan.Zero : ParseDuration(r) };
    private static readonly Option<TimeSpan?> WarmAheadOption = new("--warm-ahead") { Description = "Each version event first names its next version as Rollout:NextVersion this long before the switch, so the next version is warmed on spare capacity", CustomParser = r => ParseDuration(r) };
    private static readonly Option<int?> WarmConcurrencyOption = new("--warm-concurrency") { Description = "Rollout:MaxConcurrency: warming calls a host runs at once [default: the library's, half of Inference:MaxConcurrency]", CustomParser = r => Integer(r, 1) };
    private static readonly Option<TimeSpan?> SwitchOverOption = new("--switch-over") { Description = "Each version event switches users to the next version gradually, by a hash of their id, over this long from the event (Rollout:SwitchAt, SwitchOver); Version changes at its end", CustomParser = r => ParseDuration(r) };
    private static readonly Option<bool> SnapshotsOption = new("--snapshots") { Description = "Hosts keep local snapshots of their tiers (ERCache:Snapshots): a restarted host loads what it wrote when it stopped" };
    private static readonly Option<TimeSpan> WindowOption = new("--window") { Description = "Width of the time series' windows, in trace time", DefaultValueFactory = _ => ReplayTimeline.DefaultWindow, CustomParser = ParseDuration };
    private static readonly Option<string?> SeriesOption = new("--series") { Description = "Write the time series (per window and model) as CSV", HelpName = "FILE.csv" };
    private static readonly Option<string?> ChartOption = new("--chart") { Description = "Draw the timeline (inference rate, fallback share, events marked) as SVG", HelpName = "FILE.svg" };

    private static readonly Option[] TierOptions = [ModelOption, DimensionsOption, DirectTtlOption, FailoverTtlOption, CapacityOption, EvictionOption, FailoverEvictionOption, FormatOption, MaxConcurrencyOption, MaxBatchOption, TimeoutOption];

    private ReplayArguments(ParseResult p)
    {
        TracePath = p.GetValue(TraceOption);
        ScarabPath = p.GetValue(ScarabOption);
        Rate = p.GetValue(RateOption);
        Synthetic = p.GetValue(SyntheticOption);
        Users = p.GetValue(UsersOption);
        Duration = p.GetValue(DurationOption);
        SyntheticModels = p.GetValue(ModelsOption)!;
        FailureRate = p.GetValue(FailureRateOption);
        Outages = p.GetValue(OutageOption) ?? [];
        Seed = p.GetValue(SeedOption);
        Stationary = p.GetValue(StationaryOption);
        WriteTracePath = p.GetValue(WriteTraceOption);
        ConfigPath = p.GetValue(ConfigOption);
        ModelName = p.GetValue(ModelOption) ?? "model";
        Dimensions = p.GetValue(DimensionsOption) ?? 64;
        DirectTtl = p.GetValue(DirectTtlOption) ?? TimeSpan.FromMinutes(1);
        FailoverTtl = p.GetValue(FailoverTtlOption) ?? TimeSpan.FromHours(1);
        Capacity = p.GetValue(CapacityOption);
        Eviction = p.GetValue(EvictionOption) ?? "Lru";
        FailoverEviction = p.GetValue(FailoverEvictionOption) ?? "Fifo";
        Format = p.GetValue(FormatOption) ?? "Float32";
        TierFlagsGiven = TierOptions.Any(o => p.GetResult(o) is not null);
        JsonPath = p.GetValue(JsonOption);
        SweepTtl = p.GetResult(SweepTtlOption) is null ? null : p.GetValue(SweepTtlOption);
        SweepCapacity = p.GetResult(SweepCapacityOption) is not null;
        Capacities = p.GetValue(SweepCapacityOption) is { Length: > 0 } capacities ? capacities : null;
        SvgPath = p.GetValue(SvgOption);
        Hosts = p.GetValue(HostsOption);
        Routing = p.GetValue(RoutingOption);
        Threads = p.GetValue(ThreadsOption);
        Warmup = p.GetValue(WarmupOption);
        Regional = p.GetValue(RegionalOption);
        Drift = p.GetValue(DriftOption);
        RefreshAhead = p.GetValue(RefreshAheadOption);
        RecommendTtl = p.GetValue(RecommendTtlOption);
        MaxDrift = p.GetValue(MaxDriftOption);
        MaxConcurrency = p.GetValue(MaxConcurrencyOption);
        MaxBatch = p.GetValue(MaxBatchOption);
        Timeout = p.GetValue(TimeoutOption);
        Events = (p.GetValue(EventOption) ?? []).Select(ParseEvent).ToArray();
        Provision = p.GetValue(ProvisionOption);
        TowerThroughput = p.GetValue(ThroughputOption);
        UserCost = p.GetValue(UserCostOption);
        CallCost = p.GetValue(CallCostOption);
        Window = p.GetValue(WindowOption);
        WarmAhead = p.GetValue(WarmAheadOption);
        WarmConcurrency = p.GetValue(WarmConcurrencyOption);
        Snapshots = p.GetValue(SnapshotsOption);
        SwitchOver = p.GetValue(SwitchOverOption);
        SeriesPath = p.GetValue(SeriesOption);
        ChartPath = p.GetValue(ChartOption);
    }

    public int? MaxConcurrency { get; }

    public int? MaxBatch { get; }

    public TimeSpan? Timeout { get; }

    /// <summary>Events given with --event (a --config file may add more under Replay:Events).</summary>
    public IReadOnlyList<ReplayEvent> Events { get; }

    public double? Provision { get; }

    public double? TowerThroughput { get; }

    public TimeSpan? UserCost { get; }

    public TimeSpan? CallCost { get; }

    public TimeSpan Window { get; }

    /// <summary>How long before each version event its next version is warmed (a rollout), or null for none.</summary>
    public TimeSpan? WarmAhead { get; }

    /// <summary>Rollout:MaxConcurrency for the warming, or null for the library's default.</summary>
    public int? WarmConcurrency { get; }

    /// <summary>How long a version event's gradual switch takes, or null for none.</summary>
    public TimeSpan? SwitchOver { get; }

    /// <summary>Whether hosts keep local snapshots for a warm restart.</summary>
    public bool Snapshots { get; }

    public string? SeriesPath { get; }

    public string? ChartPath { get; }

    /// <summary>Whether anything of the timeline was asked for on the command line.</summary>
    public bool TimelineGiven => Events.Count > 0 || WarmAhead is not null || SwitchOver is not null || Snapshots || Provision is not null || TowerThroughput is not null || UserCost is not null || SeriesPath is not null || ChartPath is not null;

    /// <summary>The expected drift per hour of the replay's moving embeddings, or null when vectors do not drift.</summary>
    public double? Drift { get; }

    /// <summary>Refresh ahead for every model, as a fraction of the direct TTL, or null.</summary>
    public double? RefreshAhead { get; }

    public bool RecommendTtl { get; }

    public double? MaxDrift { get; }

    public string? TracePath { get; }

    public string? ScarabPath { get; }

    public double? Rate { get; }

    public bool Synthetic { get; }

    public int Users { get; }

    public TimeSpan Duration { get; }

    public IReadOnlyList<string> SyntheticModels { get; }

    public double FailureRate { get; }

    public IReadOnlyList<(TimeSpan Start, TimeSpan Length)> Outages { get; }

    public int Seed { get; }

    public bool Stationary { get; }

    public string? WriteTracePath { get; }

    public string? ConfigPath { get; }

    public string ModelName { get; }

    public int Dimensions { get; }

    public TimeSpan DirectTtl { get; }

    public TimeSpan FailoverTtl { get; }

    public int? Capacity { get; }

    public string Eviction { get; }

    public string FailoverEviction { get; }

    public string Format { get; }

    public bool TierFlagsGiven { get; }

    public string? JsonPath { get; }

    public IReadOnlyList<TimeSpan>? SweepTtl { get; }

    public bool SweepCapacity { get; }

    public IReadOnlyList<int>? Capacities { get; }

    public string? SvgPath { get; }

    public int Hosts { get; }

    public Replay.Routing? Routing { get; }

    public int Threads { get; }

    public TimeSpan Warmup { get; }

    /// <summary><c>memory</c>, <c>redis=HOST:PORT</c>, or null for caches of their own.</summary>
    public string? Regional { get; }

    /// <summary>The root command with every option; its action runs <paramref name="run"/> on the parsed arguments.</summary>
    public static RootCommand CreateCommand(Func<ReplayArguments, int> run)
    {
        var command = new RootCommand(
            "ERCache trace replay: drives the real library with a trace on a simulated clock and reports compute saved, staleness and failover. "
            + "One replay takes about a second per million requests per thread with instant towers (the built-in synthetic trace of 2,000 users: seconds; the Scarab trace: about 8 s); "
            + "--provision and events first replay the trace once more to measure the steady demand. A sweep runs one replay per point "
            + "(--sweep-capacity: 4 strategies x 6 capacities, 24 replays). Progress, with an estimate of the time left, goes to standard error after each "
            + "replay of a sweep and every 10 s of a long replay; the tables go to standard output.");
        foreach (var option in new Option[]
                 {
                     TraceOption, ScarabOption, RateOption, SyntheticOption, UsersOption, DurationOption, ModelsOption, FailureRateOption,
                     OutageOption, StationaryOption, SeedOption, WriteTraceOption, ConfigOption, ModelOption, DimensionsOption, DirectTtlOption, FailoverTtlOption,
                     CapacityOption, EvictionOption, FailoverEvictionOption, FormatOption, JsonOption, SweepTtlOption, SweepCapacityOption,
                     SvgOption, HostsOption, RoutingOption, ThreadsOption, WarmupOption, RegionalOption, DriftOption, RefreshAheadOption,
                     RecommendTtlOption, MaxDriftOption, MaxConcurrencyOption, MaxBatchOption, TimeoutOption, EventOption, ProvisionOption, ThroughputOption, UserCostOption,
                     CallCostOption, WarmAheadOption, WarmConcurrencyOption, SwitchOverOption, SnapshotsOption, WindowOption, SeriesOption, ChartOption,
                 })
        {
            command.Options.Add(option);
        }

        command.SetAction(p => run(new ReplayArguments(p).Checked()));
        return command;
    }

    /// <summary>Parses <paramref name="args"/> and runs the command: <c>--help</c> prints every option and returns 0; a
    /// command line that does not parse is a <see cref="UsageException"/> naming the option.</summary>
    public static int Invoke(IReadOnlyList<string> args, TextWriter stdout, Func<ReplayArguments, int> run)
    {
        var parse = CreateCommand(run).Parse(args);
        if (parse.Action is not HelpAction)
        {
            if (parse.UnmatchedTokens.Count > 0)
            {
                throw new UsageException($"Unknown option '{parse.UnmatchedTokens[0]}'. Run with --help for the options.");
            }

            if (parse.Errors.Count > 0)
            {
                throw new UsageException(string.Join(Environment.NewLine, parse.Errors.Select(e => e.Message)));
            }
        }

        return parse.Invoke(new InvocationConfiguration { Output = stdout, EnableDefaultExceptionHandler = false });
    }

    /// <summary>Parses 250ms, 10s, 5m, 2h, 1d, or a .NET TimeSpan (00:01:00).</summary>
    public static bool TryParseDuration(string value, out TimeSpan duration)
    {
        string v = value.Trim();
        (string Suffix, double Ms)[] units = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];
        foreach (var (suffix, ms) in units)
        {
            if (v.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) && !(suffix == "s" && v.EndsWith("ms", StringComparison.OrdinalIgnoreCase))
                && double.TryParse(v[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out double n) && n > 0)
            {
                duration = TimeSpan.FromMilliseconds(n * ms);
                return true;
            }
        }

        return TimeSpan.TryParse(v, CultureInfo.InvariantCulture, out duration) && duration > TimeSpan.Zero;
    }

    /// <summary>The rules that join several options.</summary>
    private ReplayArguments Checked()
    {
        int inputs = (TracePath is null ? 0 : 1) + (ScarabPath is null ? 0 : 1) + (Synthetic ? 1 : 0);
        if (inputs != 1)
        {
            throw new UsageException("Give exactly one input: --trace FILE.csv, --scarab FILE --rate N, or --synthetic.");
        }

        if (ScarabPath is not null && Rate is null)
        {
            throw new UsageException("--scarab needs --rate N (requests per second): the key trace has no timestamps.");
        }

        if (ConfigPath is not null && TierFlagsGiven)
        {
            throw new UsageException("Give either --config or the tier options (--dimensions, --direct-ttl, ...), not both.");
        }

        if (SweepTtl is not null && SweepCapacity)
        {
            throw new UsageException("Run --sweep-ttl and --sweep-capacity separately.");
        }

        if (RecommendTtl && (Drift is null || MaxDrift is null))
        {
            throw new UsageException("--recommend-ttl needs --drift RATE (how fast embeddings move) and --max-drift X (the p99 drift to stay under).");
        }

        if (MaxDrift is not null && !RecommendTtl)
        {
            throw new UsageException("--max-drift is the bound of --recommend-ttl; give both.");
        }

        if ((Provision is null ? 0 : 1) + (TowerThroughput is null ? 0 : 1) + (UserCost is null ? 0 : 1) > 1)
        {
            throw new UsageException("Give the towers' capacity one way: --provision X, --tower-throughput N or --user-cost T.");
        }

        if (CallCost is not null && Provision is null && TowerThroughput is null && UserCost is null)
        {
            throw new UsageException("--call-cost is part of a finite tower: give it with --provision, --tower-throughput or --user-cost.");
        }

        if (TimelineGiven && (SweepTtl is not null || SweepCapacity || RecommendTtl || (Hosts > 1 && Routing is null)))
        {
            throw new UsageException("Events, finite towers and the time series belong to one replay: not with a sweep, --recommend-ttl, or --hosts without --routing.");
        }

        return this;
    }

    private static TimeSpan ParseDuration(ArgumentResult r) => ParseDuration(r, r.Tokens.Single().Value);

    private static ReplayEvent ParseEvent(string text)
    {
        try
        {
            return ReplayEvent.Parse(text);
        }
        catch (FormatException ex)
        {
            throw new UsageException($"--event: {ex.Message}");
        }
    }

    private static TimeSpan ParseDuration(ArgumentResult r, string value)
    {
        if (TryParseDuration(value, out var duration))
        {
            return duration;
        }

        r.AddError($"{Name(r)}: '{value}' is not a positive duration (use 250ms, 10s, 5m, 2h, 1d or 00:01:00).");
        return default;
    }

    private static TimeSpan[] ParseDurations(ArgumentResult r) => List(r).Select(v => ParseDuration(r, v)).ToArray();

    private static int[]? ParseCapacities(ArgumentResult r) => r.Tokens.Count == 0 ? null : List(r).Select(v => Integer(r, v, 1)).ToArray();

    private static int Integer(ArgumentResult r, int min) => Integer(r, r.Tokens.Single().Value, min);

    private static int Integer(ArgumentResult r, string value, int min)
    {
        if (int.TryParse(value, NumberStyles.AllowLeadingSign | NumberStyles.AllowThousands, CultureInfo.InvariantCulture, out int n) && n >= min)
        {
            return n;
        }

        r.AddError($"{Name(r)}: '{value}' is not an integer of at least {min}.");
        return default;
    }

    private static double Number(ArgumentResult r, bool positive)
    {
        string value = r.Tokens.Single().Value;
        if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double n) && double.IsFinite(n) && (positive ? n > 0 : n >= 0))
        {
            return n;
        }

        r.AddError($"{Name(r)}: '{value}' is not a {(positive ? "positive" : "non-negative")} number.");
        return default;
    }

    /// <summary>A number strictly between 0 and 1.</summary>
    private static double? Fraction(ArgumentResult r)
    {
        string value = r.Tokens.Single().Value;
        if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double n) && n is > 0 and < 1)
        {
            return n;
        }

        r.AddError($"{Name(r)} must be a number between 0 and 1, both excluded (got '{value}').");
        return null;
    }

    private static double ParseFailureRate(ArgumentResult r)
    {
        double rate = Number(r, positive: false);
        if (rate > 1)
        {
            r.AddError($"--failure-rate must be between 0 and 1 (got {rate.ToString(CultureInfo.InvariantCulture)}).");
        }

        return rate;
    }

    private static (TimeSpan, TimeSpan)[] ParseOutages(ArgumentResult r) => r.Tokens.Select(t =>
    {
        var parts = t.Value.Split('+');
        if (parts.Length != 2)
        {
            r.AddError($"--outage must be START+LENGTH, e.g. 2h+10m (got '{t.Value}').");
            return default;
        }

        return (parts[0] is "0" ? TimeSpan.Zero : ParseDuration(r, parts[0]), ParseDuration(r, parts[1]));
    }).ToArray();

    private static Replay.Routing? ParseRouting(ArgumentResult r)
    {
        string value = r.Tokens.Single().Value;
        if (Enum.TryParse<Replay.Routing>(value, ignoreCase: true, out var routing) && !int.TryParse(value, out _))
        {
            return routing;
        }

        r.AddError($"--routing must be random or sticky (got '{value}').");
        return null;
    }

    private static string[] List(ArgumentResult r)
    {
        var items = r.Tokens.Single().Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (items.Length == 0)
        {
            r.AddError($"{Name(r)} needs a comma-separated list.");
        }

        return items;
    }

    private static void CheckRegional(OptionResult r)
    {
        string value = r.GetValueOrDefault<string?>() ?? string.Empty;
        if (value != "memory" && !(value.StartsWith("redis=", StringComparison.Ordinal) && value.Length > "redis=".Length))
        {
            r.AddError($"--regional must be memory or redis=HOST:PORT (got '{value}').");
        }
    }

    private static string Name(ArgumentResult r) => r.Parent is OptionResult o ? o.Option.Name : "argument";
}
