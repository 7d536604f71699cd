using System.Globalization;

namespace ERCache.Replay;

/// <summary>A command line the harness cannot act on; the message says which option and why.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>The parsed command line (see <see cref="Usage"/>).</summary>
internal sealed class ReplayArguments
{
    public const string Usage = """
        ERCache trace replay: drives the real library with a trace and reports compute saved, staleness and failover.

        Input (one of):
          --trace FILE.csv            header, then ts,user[,model][,fail] (ts: integer ms, non-decreasing)
          --scarab FILE[.gz] --rate N big-endian int64 keys, one request per key at N requests/s
          --synthetic                 seeded generator matching 52% of gaps <= 1 min, 76% <= 10 min
              --users N (50000) --duration 6h --models a,b (model) --failure-rate 0.0
              --outage START+LENGTH (repeatable, e.g. 2h+10m) --seed N (1) --write-trace FILE.csv

        Configuration (one of):
          --config appsettings.json   the library's own ERCache section (Capacity absent = unbounded)
          --dimensions 64 --direct-ttl 1m --failover-ttl 1h --capacity N (unbounded) --eviction Lru
          --failover-eviction Fifo --format Float32 --model NAME (model)

        Output and experiments:
          --json FILE                 the result as JSON
          --sweep-ttl 10s,30s,1m,...  one replay per direct TTL; table and SVG (--svg FILE, ttl-sweep.svg)
          --sweep-capacity [N,N,...]  hit rate per capacity for every eviction strategy; table and SVG
                                      (default: 1%..50% of distinct users; --svg FILE, capacity-sweep.svg)
          --hosts N [--routing random|sticky]  N independent caches; without --routing, compares 1 host,
                                      N random and N sticky
          --threads N                 replay users on N threads (default: processor count) when the result
                                      is the same as on one (no tier can fill); otherwise one, saying why
          --warmup 10s                before timing, replay the trace's first requests through throwaway
                                      caches until the JIT settles, for at most this long (0: no warm-up)
        """;

    public string? TracePath { get; private set; }

    public string? ScarabPath { get; private set; }

    public double? Rate { get; private set; }

    public bool Synthetic { get; private set; }

    public int Users { get; private set; } = 50_000;

    public TimeSpan Duration { get; private set; } = TimeSpan.FromHours(6);

    public IReadOnlyList<string> SyntheticModels { get; private set; } = ["model"];

    public double FailureRate { get; private set; }

    public List<(TimeSpan Start, TimeSpan Length)> Outages { get; } = [];

    public int Seed { get; private set; } = 1;

    public string? WriteTracePath { get; private set; }

    public string? ConfigPath { get; private set; }

    public string ModelName { get; private set; } = "model";

    public int Dimensions { get; private set; } = 64;

    public TimeSpan DirectTtl { get; private set; } = TimeSpan.FromMinutes(1);

    public TimeSpan FailoverTtl { get; private set; } = TimeSpan.FromHours(1);

    public int? Capacity { get; private set; }

    public string Eviction { get; private set; } = "Lru";

    public string FailoverEviction { get; private set; } = "Fifo";

    public string Format { get; private set; } = "Float32";

    public bool TierFlagsGiven { get; private set; }

    public string? JsonPath { get; private set; }

    public IReadOnlyList<TimeSpan>? SweepTtl { get; private set; }

    public bool SweepCapacity { get; private set; }

    public IReadOnlyList<int>? Capacities { get; private set; }

    public string? SvgPath { get; private set; }

    public int Hosts { get; private set; } = 1;

    public Replay.Routing? Routing { get; private set; }

    public int Threads { get; private set; } = Environment.ProcessorCount;

    public TimeSpan Warmup { get; private set; } = TimeSpan.FromSeconds(10);

    public bool Help { get; private set; }

    public static ReplayArguments Parse(IReadOnlyList<string> args)
    {
        var a = new ReplayArguments();
        for (int i = 0; i < args.Count; i++)
        {
            string option = args[i];
            string Value() => i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal)
                ? args[++i]
                : throw new UsageException($"{option} needs a value.");
            switch (option)
            {
                case "--help" or "-h": a.Help = true; break;
                case "--trace": a.TracePath = Value(); break;
                case "--scarab": a.ScarabPath = Value(); break;
                case "--rate": a.Rate = ParseDouble(option, Value(), positive: true); break;
                case "--synthetic": a.Synthetic = true; break;
                case "--users": a.Users = ParseInt(option, Value(), 1); break;
                case "--duration": a.Duration = ParseDuration(option, Value()); break;
                case "--models": a.SyntheticModels = SplitList(option, Value()); break;
                case "--failure-rate":
                    a.FailureRate = ParseDouble(option, Value(), positive: false);
                    if (a.FailureRate > 1)
                    {
                        throw new UsageException($"--failure-rate must be between 0 and 1 (got {a.FailureRate.ToString(CultureInfo.InvariantCulture)}).");
                    }

                    break;
                case "--outage": a.Outages.Add(ParseOutage(Value())); break;
                case "--seed": a.Seed = ParseInt(option, Value(), int.MinValue); break;
                case "--write-trace": a.WriteTracePath = Value(); break;
                case "--config": a.ConfigPath = Value(); break;
                case "--model": a.ModelName = Value(); a.TierFlagsGiven = true; break;
                case "--dimensions": a.Dimensions = ParseInt(option, Value(), 1); a.TierFlagsGiven = true; break;
                case "--direct-ttl": a.DirectTtl = ParseDuration(option, Value()); a.TierFlagsGiven = true; break;
                case "--failover-ttl": a.FailoverTtl = ParseDuration(option, Value()); a.TierFlagsGiven = true; break;
                case "--capacity": a.Capacity = ParseInt(option, Value(), 1); a.TierFlagsGiven = true; break;
                case "--eviction": a.Eviction = Value(); a.TierFlagsGiven = true; break;
                case "--failover-eviction": a.FailoverEviction = Value(); a.TierFlagsGiven = true; break;
                case "--format": a.Format = Value(); a.TierFlagsGiven = true; break;
                case "--json": a.JsonPath = Value(); break;
                case "--sweep-ttl": a.SweepTtl = SplitList(option, Value()).Select(v => ParseDuration(option, v)).ToArray(); break;
                case "--sweep-capacity":
                    a.SweepCapacity = true;
                    if (i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
                    {
                        a.Capacities = SplitList(option, args[++i]).Select(v => ParseInt(option, v, 1)).ToArray();
                    }

                    break;
                case "--svg": a.SvgPath = Value(); break;
                case "--hosts": a.Hosts = ParseInt(option, Value(), 1); break;
                case "--threads": a.Threads = ParseInt(option, Value(), 1); break;
                case "--warmup":
                    string warmup = Value();
                    a.Warmup = warmup.Trim() == "0" ? TimeSpan.Zero : ParseDuration(option, warmup);
                    break;
                case "--routing":
                    string routing = Value();
                    a.Routing = Enum.TryParse<Replay.Routing>(routing, ignoreCase: true, out var r) && !int.TryParse(routing, out _)
                        ? r
                        : throw new UsageException($"--routing must be random or sticky (got '{routing}').");
                    break;
                default: throw new UsageException($"Unknown option '{option}'. Run with --help for the options.");
            }
        }

        if (a.Help)
        {
            return a;
        }

        int inputs = (a.TracePath is null ? 0 : 1) + (a.ScarabPath is null ? 0 : 1) + (a.Synthetic ? 1 : 0);
        if (inputs != 1)
        {
            throw new UsageException("Give exactly one input: --trace FILE.csv, --scarab FILE --rate N, or --synthetic.");
        }

        if (a.ScarabPath is not null && a.Rate is null)
        {
            throw new UsageException("--scarab needs --rate N (requests per second): the key trace has no timestamps.");
        }

        if (a.ConfigPath is not null && a.TierFlagsGiven)
        {
            throw new UsageException("Give either --config or the tier options (--dimensions, --direct-ttl, ...), not both.");
        }

        if (a.SweepTtl is not null && a.SweepCapacity)
        {
            throw new UsageException("Run --sweep-ttl and --sweep-capacity separately.");
        }

        return a;
    }

    /// <summary>Parses 250ms, 10s, 5m, 2h, 1d, or a .NET TimeSpan (00:01:00).</summary>
    public static TimeSpan ParseDuration(string option, string value)
    {
        string v = value.Trim();
        (string Suffix, double Ms)[] units = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];
        foreach (var (suffix, ms) in units)
        {
            if (v.EndsWith(suffix, StringComparison.OrdinalIgnoreCase) && !(suffix == "s" && v.EndsWith("ms", StringComparison.OrdinalIgnoreCase))
                && double.TryParse(v[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out double n) && n > 0)
            {
                return TimeSpan.FromMilliseconds(n * ms);
            }
        }

        return TimeSpan.TryParse(v, CultureInfo.InvariantCulture, out var span) && span > TimeSpan.Zero
            ? span
            : throw new UsageException($"{option}: '{value}' is not a positive duration (use 250ms, 10s, 5m, 2h, 1d or 00:01:00).");
    }

    private static (TimeSpan, TimeSpan) ParseOutage(string value)
    {
        var parts = value.Split('+');
        return parts.Length == 2
            ? (parts[0] is "0" ? TimeSpan.Zero : ParseDuration("--outage", parts[0]), ParseDuration("--outage", parts[1]))
            : throw new UsageException($"--outage must be START+LENGTH, e.g. 2h+10m (got '{value}').");
    }

    private static int ParseInt(string option, string value, int min) =>
        int.TryParse(value, NumberStyles.AllowLeadingSign | NumberStyles.AllowThousands, CultureInfo.InvariantCulture, out int n) && n >= min
            ? n
            : throw new UsageException($"{option}: '{value}' is not an integer of at least {min}.");

    private static double ParseDouble(string option, string value, bool positive) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double n) && double.IsFinite(n) && (positive ? n > 0 : n >= 0)
            ? n
            : throw new UsageException($"{option}: '{value}' is not a {(positive ? "positive" : "non-negative")} number.");

    private static string[] SplitList(string option, string value)
    {
        var items = value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        return items.Length > 0 ? items : throw new UsageException($"{option} needs a comma-separated list.");
    }
}
