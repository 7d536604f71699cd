using System.Globalization;
using System.Text;
using ERCache.Replay.Output;
using ERCache.Replay.Replay;
using ERCache.Replay.Traces;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace ERCache.Replay;

/// <summary>The harness's main job: read the input, build the configuration, replay, report.</summary>
internal static class ReplayCommand
{
    public const int Ok = 0, BadUsage = 2, BadInput = 3;

    /// <summary>Default capacities of a capacity sweep, as shares of the trace's distinct users.</summary>
    private static readonly double[] CapacityFractions = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5];

    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        try
        {
            return ReplayArguments.Invoke(args, stdout, a => Execute(a, stdout, stderr));
        }
        catch (UsageException ex)
        {
            stderr.WriteLine($"error: {ex.Message}");
            return BadUsage;
        }
        catch (TraceFormatException ex)
        {
            stderr.WriteLine($"error: {ex.Message}");
            return BadInput;
        }
        catch (Exception ex) when (ex is OptionsValidationException or ArgumentException or IOException or UnauthorizedAccessException or InvalidDataException)
        {
            stderr.WriteLine($"error: {ex.Message}");
            return BadInput;
        }
    }

    private static int Execute(ReplayArguments a, TextWriter stdout, TextWriter stderr)
    {
        var trace = LoadTrace(a, stdout);
        var distinct = trace.DistinctUsersPerModel();
        stdout.WriteLine(Inv($"Trace: {trace.Requests.Length:N0} requests over {TimeSpan.FromMilliseconds(trace.DurationMs)}, {string.Join(", ", distinct.Select((n, i) => $"{(trace.Models[i].Length == 0 ? "model" : trace.Models[i])}: {n:N0} users"))}."));
        stdout.WriteLine();
        var unbounded = distinct.DefaultIfEmpty(1).Max();
        if (a.Warmup > TimeSpan.Zero)
        {
            var w = ReplayRunner.WarmUp(trace, BuildOptions(a, trace, unbounded), a.Hosts, a.Routing ?? Routing.Sticky, a.Seed, a.Threads, a.Warmup);
            stdout.WriteLine(Inv($"Warm-up (not timed): {w.Runs} replays of the first {w.Requests:N0} requests through throwaway caches in {w.Elapsed.TotalSeconds:F1} s, ") +
                (w.Settled ? "until the JIT had compiled nothing new for 0.5 s." : Inv($"stopped at the --warmup limit ({Label(a.Warmup)}) while the JIT was still compiling: the rate may be low.")));
            stdout.WriteLine();
        }

        if (a.RecommendTtl)
        {
            RecommendTtl(a, trace, unbounded, stdout, stderr);
        }
        else if (a.SweepTtl is not null)
        {
            SweepTtl(a, trace, unbounded, stdout, stderr);
        }
        else if (a.SweepCapacity)
        {
            SweepCapacity(a, trace, unbounded, stdout, stderr);
        }
        else if (a.Hosts > 1 && a.Routing is null)
        {
            CompareRouting(a, trace, unbounded, stdout, stderr);
        }
        else
        {
            var options = BuildOptions(a, trace, unbounded);
            using var store = RegionalStore.Open(a.Regional, options);
            var timeline = TimelineCommand.Build(a, trace, options, store?.Store, stdout);
            var result = ReplayRunner.Run(trace, options, a.Hosts, a.Routing ?? Routing.Sticky, a.Seed, a.Threads, store?.Store, Drift(a), timeline, new ProgressLine("replay", stderr).Report);
            stdout.Write(ReportWriter.Markdown(result));
            stdout.WriteLine();
            stdout.WriteLine(Inv($"Replayed {result.Total.Requests:N0} requests in {result.Elapsed.TotalSeconds:F2} s: {result.RequestsPerSecond:N0} requests/s ({a.Hosts} host{(a.Hosts == 1 ? "" : "s")}, {Threads(result)})."));
            if (result.Regional is { } traffic)
            {
                stdout.WriteLine(Inv($"Regional store ({a.Regional}): {result.Total.RegionalHits:N0} regional hits; {traffic.ReadRoundTrips:N0} lookups ({traffic.BytesRead:N0} bytes), {traffic.WriteRoundTrips:N0} write round trips carrying {traffic.WriteGroups:N0} grouped writes, {traffic.ValuesWritten:N0} values ({traffic.BytesWritten:N0} bytes)."));
            }
            TimelineCommand.Report(a, result, TraceLabel(a), stdout);
            if (a.JsonPath is not null)
            {
                using var file = File.Create(a.JsonPath);
                ReportWriter.Json(result, file, withSeries: TimelineCommand.IsTimeline(result));
                stdout.WriteLine($"JSON written to {a.JsonPath}.");
            }
        }

        return Ok;
    }

    private static Trace LoadTrace(ReplayArguments a, TextWriter stdout)
    {
        Trace trace;
        if (a.TracePath is not null)
        {
            trace = CsvTrace.Read(a.TracePath);
        }
        else if (a.ScarabPath is not null)
        {
            trace = ScarabTrace.Read(a.ScarabPath, a.Rate!.Value);
        }
        else
        {
            trace = SyntheticTrace.Generate(new SyntheticSettings
            {
                Users = a.Users,
                Duration = a.Duration,
                Models = a.SyntheticModels,
                FailureRate = a.FailureRate,
                Outages = a.Outages,
                Seed = a.Seed,
                Stationary = a.Stationary,
            });
            stdout.WriteLine(Inv($"Synthetic trace{(a.Stationary ? " (stationary)" : "")}: {a.Users:N0} users over {a.Duration}, seed {a.Seed}: {SyntheticTrace.ShareOfGapsWithin(trace, TimeSpan.FromMinutes(1)):P1} of same-user gaps within 1 min, {SyntheticTrace.ShareOfGapsWithin(trace, TimeSpan.FromMinutes(10)):P1} within 10 min."));
            if (a.WriteTracePath is not null)
            {
                CsvTrace.Write(trace, a.WriteTracePath);
                stdout.WriteLine($"Trace written to {a.WriteTracePath}.");
            }
        }

        return trace;
    }

    /// <summary>The options the replay runs with, bound and validated by the library exactly as a service's
    /// configuration is: from --config (where an absent Capacity means unbounded) or from the flags, written as the
    /// same configuration keys.</summary>
    internal static ERCacheOptions BuildOptions(ReplayArguments a, Trace trace, int unbounded)
    {
        var builder = new ConfigurationBuilder();
        if (a.ConfigPath is null)
        {
            builder.AddInMemoryCollection(FlagSettings(a, trace, unbounded));
        }
        else
        {
            var file = new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(a.ConfigPath), optional: false).Build();
            builder.AddConfiguration(file).AddInMemoryCollection(UnboundedCapacities(file.GetSection(ERCacheOptions.DefaultSectionPath), unbounded));
        }

        var options = ERCacheOptions.FromConfiguration(builder.Build().GetSection(ERCacheOptions.DefaultSectionPath));
        if (a.RefreshAhead is { } ahead)
        {
            foreach (var model in options.Models.Values)
            {
                model.Freshness.RefreshAhead = ahead; // checked with the rest when the replay's caches are built
            }
        }

        return options;
    }

    /// <summary>The moving embeddings of <c>--drift</c>, or null.</summary>
    internal static DriftingEmbedding? Drift(ReplayArguments a) => a.Drift is { } rate ? new DriftingEmbedding(rate) : null;

    /// <summary>One replay with every model's direct TTL set to <paramref name="ttl"/> (failover TTLs raised to it).</summary>
    private static ReplayResult RunWithDirectTtl(ReplayArguments a, Trace trace, int unbounded, TimeSpan ttl)
    {
        var options = BuildOptions(a, trace, unbounded);
        foreach (var model in options.Models.Values)
        {
            model.Direct.Ttl = ttl;
            model.Failover.Ttl = model.Failover.Ttl < ttl ? ttl : model.Failover.Ttl;
        }

        return ReplayRunner.Run(trace, options, a.Hosts, a.Routing ?? Routing.Sticky, a.Seed, a.Threads, drift: Drift(a));
    }

    /// <summary>Default TTLs of --recommend-ttl.</summary>
    private static readonly TimeSpan[] RecommendTtls =
        [.. new[] { 10, 30, 60, 120, 300, 600, 1200, 1800, 3600 }.Select(s => TimeSpan.FromSeconds(s))];

    /// <summary>Per model, the longest direct TTL whose p99 drift stays at or under --max-drift, and what it saves.</summary>
    private static void RecommendTtl(ReplayArguments a, Trace trace, int unbounded, TextWriter stdout, TextWriter stderr)
    {
        var ttls = a.SweepTtl ?? RecommendTtls;
        var progress = new ProgressLine("TTL recommendation", stderr);
        var runs = ttls.Select((ttl, i) =>
        {
            var result = RunWithDirectTtl(a, trace, unbounded, ttl);
            progress.RunDone(i + 1, ttls.Count, $"TTL {Label(ttl)}");
            return (Ttl: ttl, Result: result);
        }).ToList();
        stdout.WriteLine(Inv($"p99 drift of served vectors by direct TTL (--drift {a.Drift}), bound {a.MaxDrift}:"));
        stdout.WriteLine();
        stdout.WriteLine($"| Model | {string.Join(" | ", ttls.Select(Label))} | Recommended TTL | Compute saved there | p99 drift there |");
        stdout.WriteLine($"|---|{string.Concat(ttls.Select(_ => "---:|"))}---:|---:|---:|");
        foreach (var model in runs[0].Result.Models.Keys)
        {
            var cells = runs.Select(r => ReportWriter.Drift(r.Result.Models[model].Drift.Percentile(99)));
            var best = runs.LastOrDefault(r => r.Result.Models[model].Drift.Percentile(99) <= a.MaxDrift);
            string recommendation = best.Result is null
                ? Inv($"none: even {Label(ttls[0])} exceeds it | - | -")
                : Inv($"{Label(best.Ttl)} | {best.Result.Models[model].ComputeSaved:P1} | {ReportWriter.Drift(best.Result.Models[model].Drift.Percentile(99))}");
            stdout.WriteLine($"| {model} | {string.Join(" | ", cells)} | {recommendation} |");
        }
    }

    /// <summary>The flags as configuration keys, for every model the trace names (or the one --model when it names none).</summary>
    private static Dictionary<string, string?> FlagSettings(ReplayArguments a, Trace trace, int unbounded)
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (string name in trace.Models is [""] ? [a.ModelName] : trace.Models)
        {
            string model = $"{ERCacheOptions.DefaultSectionPath}:Models:{name}";
            settings[$"{model}:Dimensions"] = Inv($"{a.Dimensions}");
            foreach (var (tier, ttl, eviction) in new[] { ("Direct", a.DirectTtl, a.Eviction), ("Failover", a.FailoverTtl, a.FailoverEviction) })
            {
                settings[$"{model}:{tier}:Ttl"] = ttl.ToString("c", CultureInfo.InvariantCulture);
                settings[$"{model}:{tier}:Capacity"] = Inv($"{a.Capacity ?? unbounded}");
                settings[$"{model}:{tier}:Eviction"] = eviction;
                settings[$"{model}:{tier}:Format"] = a.Format;
            }

            if (a.MaxConcurrency is { } concurrency)
            {
                settings[$"{model}:Inference:MaxConcurrency"] = Inv($"{concurrency}");
            }

            if (a.MaxBatch is { } batch)
            {
                settings[$"{model}:Inference:MaxBatchSize"] = Inv($"{batch}");
            }

            if (a.Timeout is { } timeout)
            {
                settings[$"{model}:Inference:Timeout"] = timeout.ToString("c", CultureInfo.InvariantCulture);
            }
        }

        return settings;
    }

    /// <summary>Capacity keys for the tiers of a --config file that give none: the replay's tiers are unbounded then.</summary>
    private static Dictionary<string, string?> UnboundedCapacities(IConfigurationSection section, int unbounded)
    {
        var settings = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var model in section.GetSection("Models").GetChildren())
        {
            foreach (string tier in new[] { "Direct", "Failover" })
            {
                if (model.GetSection($"{tier}:Capacity").Value is null)
                {
                    settings[$"{model.Path}:{tier}:Capacity"] = Inv($"{unbounded}");
                }
            }
        }

        return settings;
    }

    private static void SweepTtl(ReplayArguments a, Trace trace, int unbounded, TextWriter stdout, TextWriter stderr)
    {
        bool drift = a.Drift is not null;
        stdout.WriteLine("| Direct TTL | Compute saved | Request-path inferences | Refreshes | Age p50 | Age p90 | Age p99 |" + (drift ? " Drift p50 | Drift p99 | Drift mean |" : "") + " Failover hits | Fallback rate |");
        stdout.WriteLine("|---|---:|---:|---:|---:|---:|---:|" + (drift ? "---:|---:|---:|" : "") + "---:|---:|");
        var saved = new List<(double, double)>();
        var p99 = new List<(double, double)>();
        var driftP99 = new List<(double, double)>();
        var progress = new ProgressLine("TTL sweep", stderr);
        foreach (var ttl in a.SweepTtl!)
        {
            var r = RunWithDirectTtl(a, trace, unbounded, ttl).Total;
            progress.RunDone(saved.Count + 1, a.SweepTtl!.Count, $"TTL {Label(ttl)}");
            var ages = r.AllAges();
            string driftCells = drift ? $" {ReportWriter.Drift(r.Drift.Percentile(50))} | {ReportWriter.Drift(r.Drift.Percentile(99))} | {ReportWriter.Drift(r.Drift.Mean)} |" : "";
            stdout.WriteLine(Inv($"| {Label(ttl)} | {r.ComputeSaved:P1} | {r.RequestPathInferences:N0} | {r.Refreshes:N0} | {ReportWriter.Ms(ages.Percentile(50))} | {ReportWriter.Ms(ages.Percentile(90))} | {ReportWriter.Ms(ages.Percentile(99))} |") + driftCells + Inv($" {r.FailoverHits:N0} | {r.FallbackRate:P2} |"));
            saved.Add((ttl.TotalSeconds, r.ComputeSaved * 100));
            p99.Add((ttl.TotalSeconds, (ages.Percentile(99) ?? 0) / 1000.0));
            driftP99.Add((ttl.TotalSeconds, r.Drift.Percentile(99) ?? 0));
        }

        if (drift)
        {
            // The triangle: what a longer TTL saves, and what it costs in freshness.
            string driftPath = Path.ChangeExtension(a.SvgPath ?? "ttl-sweep.svg", null) + "-drift.svg";
            File.WriteAllText(driftPath, SweepChart.RenderSvg(
                Inv($"Direct TTL sweep on {TraceLabel(a)}, drift {a.Drift}/h{(a.RefreshAhead is { } f ? Inv($", refresh ahead at {f:P0} of the TTL") : "")}: compute saved and p99 drift"),
                "direct TTL (log scale)",
                "compute saved (%)",
                "p99 drift of served vectors (1 - cosine)",
                [new Series("compute saved (%)", saved), new Series("p99 drift", driftP99, RightAxis: true)],
                logX: true,
                x => Label(TimeSpan.FromSeconds(x))));
            stdout.WriteLine();
            stdout.WriteLine($"SVG written to {driftPath}.");
        }

        string svgPath = a.SvgPath ?? "ttl-sweep.svg";
        File.WriteAllText(svgPath, SweepChart.RenderSvg(
            $"Direct TTL sweep on {TraceLabel(a)}: compute saved and p99 age",
            "direct TTL (log scale)",
            "compute saved (%)",
            "p99 age of served vectors (s, log scale)",
            [new Series("compute saved (%)", saved), new Series("p99 age (s)", p99, RightAxis: true)],
            logX: true,
            x => Label(TimeSpan.FromSeconds(x)),
            logRight: true));
        stdout.WriteLine();
        stdout.WriteLine($"SVG written to {svgPath}.");
    }

    private static void SweepCapacity(ReplayArguments a, Trace trace, int unbounded, TextWriter stdout, TextWriter stderr)
    {
        var capacities = a.Capacities ?? CapacityFractions.Select(f => Math.Max(1, (int)(f * unbounded))).Distinct().ToArray();
        EvictionStrategy[] strategies = [EvictionStrategy.Lru, EvictionStrategy.Fifo, EvictionStrategy.Sieve, EvictionStrategy.MemoryCache];
        stdout.WriteLine(Inv($"Direct-tier hit rate by capacity ({unbounded:N0} distinct users)"));
        stdout.WriteLine();
        stdout.WriteLine($"| Capacity | {string.Join(" | ", strategies)} |");
        stdout.WriteLine($"|---:|{string.Concat(strategies.Select(_ => "---:|"))}");
        var series = strategies.ToDictionary(s => s, _ => new List<(double, double)>());
        var progress = new ProgressLine("capacity sweep", stderr);
        int done = 0;
        foreach (int capacity in capacities)
        {
            var row = new StringBuilder(Inv($"| {capacity:N0} |"));
            foreach (var strategy in strategies)
            {
                var options = BuildOptions(a, trace, unbounded);
                foreach (var model in options.Models.Values)
                {
                    model.Direct.Capacity = capacity;
                    model.Direct.Eviction = strategy;
                    model.Direct.MaxBytes = null;
                }

                var r = ReplayRunner.Run(trace, options, a.Hosts, a.Routing ?? Routing.Sticky, a.Seed, a.Threads, drift: Drift(a)).Total;
                row.Append(Inv($" {r.ComputeSaved:P1} |"));
                series[strategy].Add((capacity, r.ComputeSaved * 100));
                progress.RunDone(++done, capacities.Count * strategies.Length, Inv($"{strategy} at {capacity:N0}"));
            }

            stdout.WriteLine(row.ToString());
        }

        string svgPath = a.SvgPath ?? "capacity-sweep.svg";
        File.WriteAllText(svgPath, SweepChart.RenderSvg(
            $"Direct-tier hit rate by capacity on {TraceLabel(a)} (direct TTL {Label(a.DirectTtl)})",
            "capacity (entries, log scale)",
            "hit rate (%)",
            null,
            strategies.Select(s => new Series(s.ToString(), series[s])).ToList(),
            logX: true,
            x => x >= 1000 ? Inv($"{x / 1000:0.#}k") : Inv($"{x:0}")));
        stdout.WriteLine();
        stdout.WriteLine($"SVG written to {svgPath}.");
    }

    private static void CompareRouting(ReplayArguments a, Trace trace, int unbounded, TextWriter stdout, TextWriter stderr)
    {
        stdout.WriteLine("| Hosts | Routing | Regional store | Compute saved | Inferences | Failover hits | Fallback rate | Direct entries (all hosts) | Store round trips (lookups / writes) | Store bytes (read / written) |");
        stdout.WriteLine("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
        var rows = new List<(int Hosts, Routing Routing, string? Regional)> { (1, Routing.Sticky, null), (a.Hosts, Routing.Random, null), (a.Hosts, Routing.Sticky, null) };
        if (a.Regional is not null)
        {
            rows.Add((a.Hosts, Routing.Random, a.Regional));
        }

        var progress = new ProgressLine("routing comparison", stderr);
        int done = 0;
        foreach (var (hosts, routing, regional) in rows)
        {
            var options = BuildOptions(a, trace, unbounded);
            using var store = RegionalStore.Open(regional, options);
            var result = ReplayRunner.Run(trace, options, hosts, routing, a.Seed, a.Threads, store?.Store, Drift(a));
            progress.RunDone(++done, rows.Count, Inv($"{hosts} hosts, {routing}"));
            var r = result.Total;
            string name = hosts == 1 ? "-" : routing.ToString().ToLowerInvariant();
            string trips = result.Regional is { } t ? Inv($"{t.ReadRoundTrips:N0} / {t.WriteRoundTrips:N0}") : "-";
            string bytes = result.Regional is { } b ? Inv($"{b.BytesRead:N0} / {b.BytesWritten:N0}") : "-";
            stdout.WriteLine(Inv($"| {hosts} | {name} | {regional ?? "-"} | {r.ComputeSaved:P1} | {r.Inferences:N0} | {r.FailoverHits:N0} | {r.FallbackRate:P2} | {r.Direct.PeakEntries:N0} | {trips} | {bytes} |"));
        }
    }

    /// <summary>Names the trace in chart titles.</summary>
    internal static string TraceLabel(ReplayArguments a) =>
        a.TracePath is not null ? Path.GetFileName(a.TracePath)
        : a.ScarabPath is not null ? Inv($"{Path.GetFileName(a.ScarabPath)} at {a.Rate}/s")
        : Inv($"the synthetic trace ({(a.Stationary ? "stationary, " : "")}{a.Users:N0} users, seed {a.Seed})");

    private static string Threads(ReplayResult result) =>
        result.SingleThreadReason is { } reason ? $"1 thread: {reason}" : result.Threads == 1 ? "1 thread" : $"{result.Threads} threads";

    /// <summary>A duration in the unit the command line takes: 2h, 10m, 30s, 250ms (zero is 0s).</summary>
    internal static string Label(TimeSpan t) =>
        t.TotalHours >= 1 && t.TotalHours % 1 == 0 ? $"{t.TotalHours}h"
        : t.TotalMinutes >= 1 && t.TotalMinutes % 1 == 0 ? $"{t.TotalMinutes}m"
        : t.TotalSeconds % 1 == 0 ? $"{t.TotalSeconds}s"
        : $"{t.TotalMilliseconds}ms";

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
