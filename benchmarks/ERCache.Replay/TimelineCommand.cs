using System.Globalization;
using ERCache.Regional;
using ERCache.Replay.Output;
using ERCache.Replay.Replay;
using ERCache.Replay.Traces;
using Microsoft.Extensions.Configuration;

namespace ERCache.Replay;

/// <summary>
/// The timeline of a replay — finite towers, events, the time series — from the command line and from a
/// <c>--config</c> file's <c>Replay</c> section (<c>Events</c>: event strings; <c>Towers</c>: <c>Provision</c>,
/// <c>Throughput</c>, <c>UserCost</c>, <c>CallCost</c>; <c>Window</c>; <c>WarmAhead</c>; <c>SwitchOver</c>), and what the replay reports about it.
/// </summary>
internal static class TimelineCommand
{
    /// <summary>The timeline to replay with. <c>--provision</c> first replays the trace with unbounded towers and no
    /// events to measure each model's steady demand.</summary>
    public static ReplayTimeline Build(ReplayArguments a, Trace trace, ERCacheOptions options, IRegionalStore? store, TextWriter stdout)
    {
        var section = a.ConfigPath is null ? null
            : new ConfigurationBuilder().AddJsonFile(Path.GetFullPath(a.ConfigPath), optional: false).Build().GetSection("Replay");
        var events = a.Events.Concat(ConfigEvents(section)).OrderBy(e => e.At).ToArray();
        var towers = section?.GetSection("Towers");
        // The command line's capacity replaces the file's; the file, like the command line, gives at most one.
        bool commandLine = a.Provision is not null || a.TowerThroughput is not null || a.UserCost is not null;
        double? provision = commandLine ? a.Provision : ConfigNumber(towers, "Provision");
        double? throughput = commandLine ? a.TowerThroughput : ConfigNumber(towers, "Throughput");
        TimeSpan? userCost = commandLine ? a.UserCost : ConfigDuration(towers, "UserCost");
        if ((provision is null ? 0 : 1) + (throughput is null ? 0 : 1) + (userCost is null ? 0 : 1) > 1)
        {
            throw new ArgumentException($"{towers!.Path}: give the towers' capacity one way: Provision, Throughput or UserCost.");
        }

        var callCost = a.CallCost ?? ConfigDuration(towers, "CallCost", allowZero: true) ?? TowerCost.DefaultPerCall;

        var window = section?["Window"] is { } w && a.Window == ReplayTimeline.DefaultWindow ? Duration(w, "Replay:Window") : a.Window;
        string[] names = ReplayRunner.ResolveModels(trace, options);
        var costs = new Dictionary<string, TowerCost>(StringComparer.OrdinalIgnoreCase);
        if (provision is { } x)
        {
            var steady = SteadyDemand(a, trace, options, store is null ? null : a.Regional, events.Length == 0 ? null : events[0].At);
            foreach (string name in names)
            {
                var model = options.Models[name];
                double perHost = steady[name] / a.Hosts;
                costs[name] = TowerCost.ForThroughput(x * perHost, model.Inference.MaxConcurrency, model.Inference.MaxBatchSize, callCost, name);
                stdout.WriteLine(Inv($"Model {name}: steady demand {steady[name]:F2} inferences/s ({perHost:F2} per host, measured with unbounded towers{(events.Length == 0 ? " over the trace" : Inv($" in the 30 min before {ReplayCommand.Label(events[0].At)}"))}); towers at {x}x: {x * perHost:F2} users/s per host, {costs[name]}, MaxConcurrency {model.Inference.MaxConcurrency}."));
                foreach (var e in events.Where(e => e.Kind == ReplayEventKind.Version && (e.Model is null || string.Equals(e.Model, name, StringComparison.OrdinalIgnoreCase))))
                {
                    stdout.WriteLine(WarmWindowAdvice(trace, Array.IndexOf(names, name), name, model, e, perHost, (x - 1) * perHost, a.Hosts));
                }
            }
        }
        else if (throughput is { } n)
        {
            foreach (string name in names)
            {
                var model = options.Models[name];
                costs[name] = TowerCost.ForThroughput(n, model.Inference.MaxConcurrency, model.Inference.MaxBatchSize, callCost, name);
                stdout.WriteLine(Inv($"Model {name}: towers of {n:F2} users/s per host: {costs[name]}, MaxConcurrency {model.Inference.MaxConcurrency}."));
            }
        }
        else if (userCost is { } perUser)
        {
            foreach (string name in names)
            {
                var model = options.Models[name];
                costs[name] = new TowerCost(callCost, perUser);
                stdout.WriteLine(Inv($"Model {name}: towers of {costs[name]}: {costs[name].Throughput(model.Inference.MaxConcurrency, model.Inference.MaxBatchSize):F2} users/s per host with full batches."));
            }
        }

        foreach (var (name, cost) in costs)
        {
            var timeout = options.Models[name].Inference.Timeout;
            if (cost.Of(1) >= timeout)
            {
                stdout.WriteLine(Inv($"Warning: a call of one user to the tower of {name} takes {cost.Of(1).TotalMilliseconds:F1} ms, past its {timeout.TotalMilliseconds} ms deadline: every inference will miss it. Lower Inference:MaxConcurrency so fewer, faster towers carry the same throughput."));
            }
            else if (options.Models[name].Inference.MaxBatchSize is var batch && cost.Of(batch) >= timeout)
            {
                stdout.WriteLine(Inv($"Note: a full batch of {batch} users takes {cost.Of(batch).TotalMilliseconds:F0} ms on the tower of {name}, past its {timeout.TotalMilliseconds} ms deadline: every user of such a call misses it. An Inference:MaxBatchSize whose call fits the deadline (--max-batch) keeps the latency of a loaded tower within it."));
            }
        }

        if (costs.Count > 0 || events.Length > 0)
        {
            stdout.WriteLine();
        }

        var warmAhead = a.WarmAhead ?? ConfigDuration(section, "WarmAhead");
        if (warmAhead is { } ahead && events.FirstOrDefault(e => e.Kind == ReplayEventKind.Version && e.At < ahead) is { } early)
        {
            throw new ArgumentException($"Event '{early.Text}' is at {ReplayCommand.Label(early.At)}, earlier than the warm-up of {ReplayCommand.Label(ahead)} before it can start.");
        }

        if (a.Snapshots && store is not null)
        {
            throw new ArgumentException("--snapshots restarts hosts from local snapshots; give it without --regional (a restarted host with a regional store recovers from the store).");
        }

        return new ReplayTimeline { Towers = costs, Events = events, Window = window, WarmAhead = warmAhead, WarmConcurrency = a.WarmConcurrency, Snapshots = a.Snapshots, SwitchOver = a.SwitchOver ?? ConfigDuration(section, "SwitchOver") };
    }

    /// <summary>
    /// How early a rollout should name its next version: the users active in the failover TTL before the switch (the
    /// ones warming picks, per host) divided by the spare capacity per host (provisioned minus steady demand), the time
    /// warming takes to give each of them a next-version vector.
    /// </summary>
    private static string WarmWindowAdvice(Trace trace, int modelIndex, string name, ModelOptions model, ReplayEvent e, double steadyPerHost, double sparePerHost, int hosts)
    {
        long end = (long)e.At.TotalMilliseconds, start = end - (long)model.Failover.Ttl.TotalMilliseconds;
        var active = new HashSet<long>();
        foreach (var request in trace.Requests)
        {
            if (request.TimestampMs >= start && request.TimestampMs < end && (modelIndex < 0 || request.Model == modelIndex))
            {
                active.Add(request.User);
            }
        }

        double perHost = (double)active.Count / hosts;
        return sparePerHost <= 0
            ? Inv($"Rollout of {name} at {ReplayCommand.Label(e.At)}: no spare capacity (towers at or below steady demand), so warming cannot run; provision above 1x.")
            : Inv($"Rollout of {name} at {ReplayCommand.Label(e.At)}: {perHost:N0} users per host were active in the {ReplayCommand.Label(model.Failover.Ttl)} before it; at {sparePerHost:F1} spare users/s per host (steady {steadyPerHost:F1}/s) warming them all takes about {ReplayCommand.Label(TimeSpan.FromSeconds(Math.Ceiling(perHost / sparePerHost / 60) * 60))}: name the next version (Rollout:NextVersion) at least that long before the switch, or switch gradually (Rollout:SwitchOver) so the users not yet warmed arrive spread out.");
    }

    /// <summary>Whether the replay has anything of a timeline to report (then the JSON carries the time series).</summary>
    public static bool IsTimeline(ReplayResult result) => result.Timeline.HasCapacity || result.Timeline.Events.Count > 0 || result.Timeline.Window != ReplayTimeline.DefaultWindow;

    /// <summary>The event table, and the CSV and chart when asked for.</summary>
    public static void Report(ReplayArguments a, ReplayResult result, string traceLabel, TextWriter stdout)
    {
        if (result.Events.Count > 0)
        {
            stdout.WriteLine();
            stdout.Write(ReportWriter.EventTable(result));
        }

        if (a.SeriesPath is not null)
        {
            SeriesCsv.Write(result, a.SeriesPath);
            stdout.WriteLine($"Time series written to {a.SeriesPath}.");
        }

        if (a.ChartPath is not null)
        {
            string towers = result.Timeline.HasCapacity
                ? a.Provision is { } x ? Inv($"towers at {x}x steady demand") : "finite towers"
                : "unbounded towers";
            File.WriteAllText(a.ChartPath, TimelineChart.RenderSvg($"{traceLabel}, {a.Hosts} host{(a.Hosts == 1 ? "" : "s")}, {towers}", result));
            stdout.WriteLine($"Chart written to {a.ChartPath}.");
        }
    }

    /// <summary>Per model, the fleet's steady demand, measured with unbounded towers and no events: the mean inference
    /// rate over the 30 minutes before <paramref name="firstEvent"/> (the state the event meets), or over the whole
    /// trace without events.</summary>
    private static Dictionary<string, double> SteadyDemand(ReplayArguments a, Trace trace, ERCacheOptions options, string? regional, TimeSpan? firstEvent)
    {
        var copy = Shards.Copy(options);
        using var store = RegionalStore.Open(regional, copy);
        var result = ReplayRunner.Run(
            trace, copy, a.Hosts, a.Routing ?? Routing.Sticky, a.Seed, a.Threads, store?.Store, ReplayCommand.Drift(a),
            new ReplayTimeline { Window = TimeSpan.FromMinutes(1) });
        return result.Series.ToDictionary(
            p => p.Key,
            p =>
            {
                int end = firstEvent is { } at ? (int)Math.Min(p.Value.Windows.Count, at.TotalMinutes) : p.Value.Windows.Count;
                int start = firstEvent is null ? 0 : Math.Max(0, end - (int)EventSummary.BeforeLength.TotalMinutes);
                return end <= start ? 0 : p.Value.Windows.Skip(start).Take(end - start).Sum(w => w.Inferences) / ((end - start) * 60.0);
            },
            StringComparer.OrdinalIgnoreCase);
    }

    private static IEnumerable<ReplayEvent> ConfigEvents(IConfigurationSection? section)
    {
        foreach (var child in section?.GetSection("Events").GetChildren() ?? [])
        {
            ReplayEvent e;
            try
            {
                e = ReplayEvent.Parse(child.Value ?? "");
            }
            catch (FormatException ex)
            {
                throw new ArgumentException($"{child.Path}: {ex.Message}");
            }

            yield return e;
        }
    }

    private static double? ConfigNumber(IConfigurationSection? section, string key) =>
        section?[key] is not { } v ? null
        : double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double n) && n > 0 ? n
        : throw new ArgumentException($"{section.Path}:{key}: '{v}' is not a positive number.");

    private static TimeSpan? ConfigDuration(IConfigurationSection? section, string key, bool allowZero = false) =>
        section?[key] is not { } v ? null
        : allowZero && v.Trim() == "0" ? TimeSpan.Zero
        : Duration(v, $"{section.Path}:{key}");

    private static TimeSpan Duration(string value, string path) =>
        ReplayArguments.TryParseDuration(value, out var d) ? d : throw new ArgumentException($"{path}: '{value}' is not a positive duration (use 250ms, 10s, 5m or 00:01:00).");

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
