using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Parsing;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using ERCache.Replay.Traces;
using ERCache.Samples.RankingService;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

// End-to-end load test of the ranking-service sample over loopback: the synthetic trace at a fixed rate, with the
// cache on and off, and with injected failures with and without the failover tier, side by side.
//   dotnet run -c Release --project benchmarks/ERCache.LoadTest -- [--requests 20000] [--rate 1000] [--users 2000]
//       [--max-seconds 60] [--failure-rate 0.2] [--items 100] [--rounds 3]
var parsed = LoadSettings.CreateCommand().Parse(args);
if (parsed.Action is HelpAction)
{
    return parsed.Invoke();
}

if (parsed.Errors.Count > 0)
{
    foreach (var error in parsed.Errors)
    {
        Console.Error.WriteLine($"error: {error.Message}");
    }

    return 2;
}

if (CapacityOptions.From(parsed) is { } capacity)
{
    return await CapacitySearch.RunAsync(capacity, Console.Out);
}

var settings = LoadSettings.From(parsed);

var trace = SyntheticTrace.Generate(new SyntheticSettings { Users = settings.Users, Seed = 11 });
var requests = trace.Requests.Take(settings.Requests).ToArray();
double traceSeconds = (requests[^1].TimestampMs - requests[0].TimestampMs) / 1000.0;
double compression = traceSeconds / (requests.Length / settings.Rate);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"{requests.Length:N0} requests of the synthetic trace ({settings.Users:N0} users, {traceSeconds / 3600:F1} h of trace time) at {settings.Rate:N0} requests/s: trace time runs {compression:F0}x faster, so every TTL is divided by {compression:F0}."));

if (settings.Processes > 1)
{
    // Several real service processes, round-robin, without and then with a shared store.
    var (store, storePort) = MultiProcessRun.StartStore(settings.Store);
    try
    {
        var multi = new List<MultiProcessResult>
        {
            await MultiProcessRun.ExecuteAsync($"{settings.Processes} processes, local tiers only", requests, settings, compression, settings.Processes, null),
            await MultiProcessRun.ExecuteAsync($"{settings.Processes} processes, shared {settings.Store}", requests, settings, compression, settings.Processes, storePort),
        };
        Console.WriteLine();
        Console.WriteLine($"| | {string.Join(" | ", multi.Select(r => r.Name))} |");
        Console.WriteLine($"|---|{string.Concat(multi.Select(_ => "---:|"))}");
        void MultiRow(string label, Func<MultiProcessResult, string> cell) => Console.WriteLine($"| {label} | {string.Join(" | ", multi.Select(cell))} |");
        MultiRow("requests sent (HTTP errors)", r => Inv($"{r.Sent:N0} ({r.HttpErrors:N0})"));
        MultiRow("latency p50 / p99", r => Inv($"{r.P50:F2} / {r.P99:F2} ms"));
        MultiRow("users inferred", r => Inv($"{r.Inferred:N0}"));
        MultiRow("embeddings: direct / regional", r => Inv($"{r.Direct:N0} / {r.Regional:N0}"));
        MultiRow("embeddings: fresh / failover / fallback", r => Inv($"{r.Fresh:N0} / {r.Failover:N0} / {r.Fallback:N0}"));
        MultiRow("compute saved", r => Inv($"{r.ComputeSaved:P1}"));
        MultiRow("fallback rate", r => Inv($"{r.FallbackRate:P2}"));
        MultiRow("store writes/s: grouped (one per user)", r => Inv($"{r.WriteGroups / r.Elapsed.TotalSeconds:N0}"));
        MultiRow("store writes/s if one per (user, model)", r => Inv($"{r.WriteValues / r.Elapsed.TotalSeconds:N0}"));

        var shared = multi[^1];
        Console.WriteLine();
        Console.WriteLine($"Shared {settings.Store}, after the trace:");
        if (shared.Deletions is { } d)
        {
            Console.WriteLine(Inv($"- deletion phase (trace sent again beside it): {d.Removals:N0} removals, each on the next process in turn; DELETE returned to the last other process applying it: p50 {d.Lag(0.5):F3} ms, p99 {d.Lag(0.99):F3} ms, max {d.Lag(1):F3} ms; not applied within 5 s: {d.NotApplied}; answers from a vector older than the removal, after application: {d.Wrong} of {d.Checked:N0}"));
        }

        Console.WriteLine(Inv($"- late regional writes dropped (stamped no later than what the store held, or than the user's removal): {shared.LateWritesInTrace:N0} during the trace, {shared.LateWrites - shared.LateWritesInTrace:N0} during the deletion phase"));
        if (shared.Loss is { } loss)
        {
            static string Sources(PassTotals t) => Inv($"direct {t.Share(t.Direct):P1}, regional {t.Share(t.Regional):P1}, inferred {t.Share(t.Fresh):P1}, failover/fallback {t.Share(t.Failover + t.Fallback):P2}; users inferred {t.Inferred:N0} in {t.Passes} passes");
            Console.WriteLine("- subscription-loss phase (services of its own with the sample's TTLs undivided, their tiers filled by one pass of the trace; then two rounds of an undisturbed pass and a pass that begins with every pub/sub connection cut):");
            Console.WriteLine($"  - passes after a cut: {Sources(loss.AfterCut)}");
            Console.WriteLine($"  - passes without:     {Sources(loss.Undisturbed)}");
        }
    }
    finally
    {
        MultiProcessRun.Stop(store);
    }

    return 0;
}

var runs = new (string Name, bool Cache, bool Failover, double FailureRate)[]
{
    ("cache on", true, true, 0),
    ("cache off", false, false, 0),
    ($"{settings.FailureRate:P0} failing, failover on", true, true, settings.FailureRate),
    ($"{settings.FailureRate:P0} failing, failover off", true, false, settings.FailureRate),
};
// Each configuration is warmed up first (unreported: JIT tiering, thread pool, GC heap, its own towers), then every
// configuration runs once per round, the order rotated each round, so no configuration always runs first or after
// the same one; each figure is reported as its range over the rounds (client and server share this process's cores).
var warmUp = requests.Take((int)Math.Min(requests.Length, settings.Rate * 5)).ToArray();
foreach (var run in runs)
{
    await LoadRun.ExecuteAsync($"warm-up, {run.Name}", warmUp, settings, compression, run.Cache, run.Failover, run.FailureRate);
}

var results = runs.Select(run => (run.Name, Rounds: new List<RunResult>())).ToArray();
for (int round = 0; round < settings.Rounds; round++)
{
    for (int k = 0; k < runs.Length; k++)
    {
        int i = (k + round) % runs.Length;
        var run = runs[i];
        results[i].Rounds.Add(await LoadRun.ExecuteAsync($"{run.Name}, round {round + 1}", requests, settings, compression, run.Cache, run.Failover, run.FailureRate));
    }
}

Console.WriteLine();
Console.WriteLine($"{settings.Rounds} round(s), order rotated each round; each cell is the range over rounds.");
Console.WriteLine();
Console.WriteLine($"| | {string.Join(" | ", results.Select(r => r.Name))} |");
Console.WriteLine($"|---|{string.Concat(results.Select(_ => "---:|"))}");
void Row(string label, Func<RunResult, double> value, string format, string unit = "") =>
    Console.WriteLine($"| {label} | {string.Join(" | ", results.Select(r => RangeText.Of(r.Rounds.Select(value), format, unit)))} |");
Row("requests sent", r => r.Sent, "N0");
Row("HTTP errors", r => r.HttpErrors, "N0");
Row("achieved rate", r => r.Sent / r.Elapsed.TotalSeconds, "N0", "/s");
Row("latency p50", r => r.P50, "F2", " ms");
Row("latency p99", r => r.P99, "F2", " ms");
Row("latency max", r => r.Max, "F1", " ms");
Row("user-tower CPU time", r => r.TowerMs / 1000, "F2", " s");
Row("users inferred", r => r.Inferred, "N0");
Row("embeddings: direct", r => r.Direct, "N0");
Row("embeddings: fresh", r => r.Fresh, "N0");
Row("embeddings: failover", r => r.Failover, "N0");
Row("embeddings: fallback", r => r.Fallback, "N0");
Row("compute saved", r => r.ComputeSaved * 100, "F1", " %");
Row("fallback rate", r => r.FallbackRate * 100, "F2", " %");
return 0;

static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

/// <summary>The command line, declared with System.CommandLine (which also writes <c>--help</c>).</summary>
internal sealed record LoadSettings(int Requests, double Rate, int Users, double MaxSeconds, double FailureRate, int Items, int Processes, int Rounds, string Store, int Deletions)
{
    private static readonly Option<int> RequestsOption = new("--requests") { Description = "Requests per run", DefaultValueFactory = _ => 20_000, Validators = { Positive<int> } };
    private static readonly Option<double> RateOption = new("--rate") { Description = "Requests per second sent", DefaultValueFactory = _ => 1000, Validators = { Positive<double> } };
    private static readonly Option<int> UsersOption = new("--users") { Description = "Users of the synthetic trace", DefaultValueFactory = _ => 2000, Validators = { Positive<int> } };
    private static readonly Option<double> MaxSecondsOption = new("--max-seconds") { Description = "Longest a run may take", DefaultValueFactory = _ => 60, Validators = { Positive<double> } };
    private static readonly Option<double> FailureRateOption = new("--failure-rate") { Description = "Share of tower calls failing in the failure runs, 0..1", DefaultValueFactory = _ => 0.2, Validators = { ShareOfOne } };
    private static readonly Option<int> ItemsOption = new("--items") { Description = "Items ranked per request", DefaultValueFactory = _ => 100, Validators = { Positive<int> } };
    private static readonly Option<int> RoundsOption = new("--rounds") { Description = "Rounds of the in-process comparison: every configuration once per round, the order rotated", DefaultValueFactory = _ => 3, Validators = { Positive<int> } };
    private static readonly Option<int> ProcessesOption = new("--processes") { Description = "Run N real service processes, round-robin, without and with a shared store (started here) instead of the in-process comparison; 1: in-process", DefaultValueFactory = _ => 1, Validators = { Positive<int> } };
    private static readonly Option<string> StoreOption = new("--store") { Description = "The shared store of --processes: redis (redis-server) or garnet", DefaultValueFactory = _ => "redis" };
    private static readonly Option<int> DeletionsOption = new("--deletions") { Description = "Removals in the deletion phase of --processes (0: none)", DefaultValueFactory = _ => 1000, Validators = { NotNegative } };

    public static RootCommand CreateCommand()
    {
        var command = new RootCommand("End-to-end load test of the ranking-service sample over loopback. By default: four configurations (cache on, cache off, failures with and without the failover tier), each first warmed up for 5 s of requests (not reported), then run once per --rounds round, the order rotated; about rounds x 4 x requests / rate seconds plus 20 s of warm-up (3 rounds of 20,000 at 1,000/s: about 4.5 min). With --processes N: N service processes without and with a shared --store, once each; with the store, the trace is then sent again beside a deletion phase of --deletions removals, and five times more to services with undivided TTLs, two of them after every pub/sub connection was cut (about 6 x requests / rate seconds more, plus the removals: 1,000 take about 15 s). With --find-capacity: ramps of --step-seconds steps per configuration and round until a step fails, then finer steps of --refine-step up to it (2 rounds: about 9 min here); see --chart.")
        {
            RequestsOption, RateOption, UsersOption, MaxSecondsOption, FailureRateOption, ItemsOption, ProcessesOption, StoreOption, DeletionsOption, RoundsOption,
        };
        StoreOption.AcceptOnlyFromAmong("redis", "garnet");
        foreach (var option in CapacityOptions.All)
        {
            command.Options.Add(option);
        }

        return command;
    }

    internal static int RoundsOf(ParseResult p) => p.GetValue(RoundsOption);

    internal static int ItemsOf(ParseResult p) => p.GetValue(ItemsOption);

    internal static bool GivenRounds(ParseResult p) => p.GetResult(RoundsOption) is not null;

    public static LoadSettings From(ParseResult p) => new(
        p.GetValue(RequestsOption), p.GetValue(RateOption), p.GetValue(UsersOption),
        p.GetValue(MaxSecondsOption), p.GetValue(FailureRateOption), p.GetValue(ItemsOption), p.GetValue(ProcessesOption), p.GetValue(RoundsOption),
        p.GetValue(StoreOption)!, p.GetValue(DeletionsOption));

    internal static void Positive<T>(OptionResult r)
        where T : struct, System.Numerics.INumber<T>
    {
        if (r.GetValueOrDefault<T>() <= T.Zero)
        {
            r.AddError($"{r.Option.Name} must be positive (got {r.GetValueOrDefault<T>()}).");
        }
    }

    internal static void NotNegative(OptionResult r)
    {
        if (r.GetValueOrDefault<int>() < 0)
        {
            r.AddError($"{r.Option.Name} must be 0 or more (got {r.GetValueOrDefault<int>()}).");
        }
    }

    internal static void ShareOfOne(OptionResult r)
    {
        if (r.GetValueOrDefault<double>() is not (>= 0 and <= 1))
        {
            r.AddError($"{r.Option.Name} must be between 0 and 1 (got {r.GetValueOrDefault<double>()}).");
        }
    }
}

/// <summary>What one run measured.</summary>
internal sealed record RunResult(
    string Name, int Sent, int HttpErrors, TimeSpan Elapsed, double P50, double P99, double Max,
    double TowerMs, long Inferred, long Direct, long Fresh, long Failover, long Fallback)
{
    private long Embeddings => Direct + Fresh + Failover + Fallback;

    public double ComputeSaved => Embeddings == 0 ? 0 : (double)Direct / Embeddings;

    public double FallbackRate => Embeddings == 0 ? 0 : (double)Fallback / Embeddings;
}

/// <summary>One configuration of the service under the trace.</summary>
internal static class LoadRun
{
    internal const int MaxInFlight = 256;

    public static async Task<RunResult> ExecuteAsync(
        string name, TraceRequest[] requests, LoadSettings settings, double compression, bool cache, bool failover, double failureRate)
    {
        var overrides = Overrides(compression, cache, failover, failureRate);
        overrides["Urls"] = "http://127.0.0.1:0";
        await using var app = RankingServiceApp.Create([], overrides, contentRoot: AppContext.BaseDirectory);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = MaxInFlight }) { BaseAddress = new Uri(address) };

        // Warm-up (JIT, connections) with users outside the trace, then measure from a counter snapshot.
        for (int i = 0; i < 200; i++)
        {
            using var warm = await client.PostAsJsonAsync("/rank", Body(-1 - i, i, settings.Items));
        }

        var before = await client.GetFromJsonAsync<StatsResponse>("/stats");
        var (sent, errors, measured, elapsed) = await SendAsync([client], requests, settings);
        var after = await client.GetFromJsonAsync<StatsResponse>("/stats");
        await app.StopAsync();

        long Delta(string source) => Requests(after!, source) - Requests(before!, source);
        double towerMs = after!.Towers.Values.Sum(t => t.ComputeMs) - before!.Towers.Values.Sum(t => t.ComputeMs);
        long inferred = after.Towers.Values.Sum(t => t.Users) - before.Towers.Values.Sum(t => t.Users);
        var result = new RunResult(
            name, sent, errors, elapsed,
            Percentile(measured, 0.50), Percentile(measured, 0.99), measured.Length == 0 ? 0 : measured[^1],
            towerMs, inferred, Delta("direct"), Delta("fresh"), Delta("failover"), Delta("fallback"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}: {sent:N0} requests in {elapsed.TotalSeconds:F1} s, p99 {result.P99:F2} ms, compute saved {result.ComputeSaved:P1}, fallback {result.FallbackRate:P2}"));
        return result;
    }

    /// <summary>The sample's configuration for a run: its TTLs divided by the trace-time compression, tiers on or off,
    /// the fault switch, quiet logs.</summary>
    internal static Dictionary<string, string?> Overrides(double compression, bool cache, bool failover, double failureRate)
    {
        var overrides = new Dictionary<string, string?>
        {
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Warning",
            ["RankingService:FailureRate"] = failureRate.ToString(CultureInfo.InvariantCulture),
        };

        // Scale the sample's TTLs to the compressed trace time; turn tiers off for the runs that ask for it.
        var config = new ConfigurationBuilder().AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json")).Build();
        foreach (var model in config.GetSection("ERCache:Models").GetChildren())
        {
            foreach (var tier in new[] { "Direct", "Failover" })
            {
                var ttl = TimeSpan.Parse(model[$"{tier}:Ttl"]!, CultureInfo.InvariantCulture);
                overrides[$"ERCache:Models:{model.Key}:{tier}:Ttl"] = (ttl / compression).ToString("c", CultureInfo.InvariantCulture);
            }

            overrides[$"ERCache:Models:{model.Key}:Direct:Enabled"] = cache ? "true" : "false";
            overrides[$"ERCache:Models:{model.Key}:Failover:Enabled"] = cache && failover ? "true" : "false";
        }

        return overrides;
    }

    /// <summary>
    /// Sends the requests at the configured rate, at most <see cref="MaxInFlight"/> at once, request <c>i</c> to
    /// <c>clients[i % clients.Length]</c> (round-robin over service instances), bounded by <c>--max-seconds</c>.
    /// Returns what was sent, the HTTP errors, the sorted latencies (ms) and the time taken.
    /// </summary>
    internal static async Task<(int Sent, int Errors, double[] SortedLatencies, TimeSpan Elapsed)> SendAsync(
        HttpClient[] clients, TraceRequest[] requests, LoadSettings settings)
    {
        var latencies = new double[requests.Length];
        int sent = 0, errors = 0;
        using var inFlight = new SemaphoreSlim(MaxInFlight);
        var tasks = new List<Task>(requests.Length);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < requests.Length && clock.Elapsed.TotalSeconds < settings.MaxSeconds; i++)
        {
            double due = i / settings.Rate;
            double wait = due - clock.Elapsed.TotalSeconds;
            if (wait > 0.002)
            {
                await Task.Delay(TimeSpan.FromSeconds(wait));
            }

            await inFlight.WaitAsync();
            int index = i;
            var client = clients[i % clients.Length];
            sent++;
            tasks.Add(Task.Run(async () =>
            {
                long start = Stopwatch.GetTimestamp();
                try
                {
                    using var response = await client.PostAsJsonAsync("/rank", Body(requests[index].User, index, settings.Items));
                    await response.Content.ReadAsByteArrayAsync();
                    if (!response.IsSuccessStatusCode)
                    {
                        Interlocked.Increment(ref errors);
                    }
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref errors);
                }
                finally
                {
                    latencies[index] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                    inFlight.Release();
                }
            }));
        }

        await Task.WhenAll(tasks);
        return (sent, errors, latencies.Take(sent).Order().ToArray(), clock.Elapsed);
    }

    /// <summary>Requests served from <paramref name="source"/>, summed over models, from a /stats snapshot.</summary>
    internal static long Requests(StatsResponse stats, string source) =>
        stats.Counters.Where(c => c.Key.StartsWith("ercache.requests{", StringComparison.Ordinal) && c.Key.EndsWith($"source={source}}}", StringComparison.Ordinal)).Sum(c => c.Value);

    internal static RankRequest Body(long user, int index, int items)
    {
        var candidates = new long[items];
        for (int j = 0; j < items; j++)
        {
            candidates[j] = ((index * 7919L) + (j * 104729L)) % 1_000_000; // a different candidate set per request
        }

        return new RankRequest(user, candidates, 10);
    }

    internal static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
}
