using System.Globalization;
using System.Net.Http.Json;
using ERCache.Replay.Output;
using ERCache.Replay.Traces;
using ERCache.Samples.RankingService;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

/// <summary>What the capacity search asks: the SLA, the fallback bound, the ramp and the towers' cost.</summary>
internal sealed record CapacitySettings(
    double SlaMs, double MaxFallback, double StartRate, double RateStep, double RefineStep, double MaxRate, double StepSeconds, double Compression, double TowerCpuMicroseconds,
    int Rounds, int Items, string? ChartPath);

/// <summary>One step of a ramp: the rate asked for and what the service did at it.</summary>
internal sealed record CapacityStep(
    double Rate, double Achieved, double P99, double FallbackShare, double CachedShare, int HttpErrors, double TowerCpuPerSecond, bool Sustained);

/// <summary>
/// Finds the largest request rate the ranking-service sample sustains, with the cache on and off: a ramp of steps,
/// each <c>StepSeconds</c> long at a rate <c>RateStep</c> times the last, on one running service (its cache warm from
/// the steps before), until p99 latency passes the SLA, fallbacks pass their bound, HTTP errors appear or the service
/// cannot keep up with the rate; then, from the last sustained rate, finer steps of <c>RefineStep</c> up to the one
/// that failed, so the limit is known to that factor. The towers spend extra CPU per user so that they, not HTTP, bound
/// the service.
/// </summary>
/// <remarks>More traffic means more users, not the same users more often: each step sends the requests of a share of
/// the synthetic trace's users over a stretch of its time (compressed <c>Compression</c> times, the TTLs with it), so
/// every user keeps the trace's own pattern of gaps and only their number grows with the rate. The stretches follow one
/// another from hour 3, and a step's users include all of the step before's (the share is a threshold on a hash of the
/// id), so those arrive with their last minutes of requests in the cache, as in a service that has been running; the
/// users the higher rate adds (about a fifth at 1.25x) start cold. (Replaying one stretch at every step instead began
/// each step with its users stale, their requests last sent a step earlier, beyond the compressed TTLs; measured, that
/// cost little, as most of a user's reuse falls within one stretch.)</remarks>
internal static class CapacitySearch
{
    private static readonly TimeSpan TraceStart = TimeSpan.FromHours(3);
    private static readonly string[] Sources = ["direct", "regional", "fresh", "failover", "fallback"];

    public static async Task<int> RunAsync(CapacitySettings settings, TextWriter stdout)
    {
        // Enough users that the fastest step has the requests it needs: every stretch of trace time (the quietest counts)
        // holds MaxRate x StepSeconds requests.
        double stretchSeconds = settings.StepSeconds * settings.Compression;
        int stepCount = StepCount(settings) + RefineCount(settings);
        var probeTrace = SyntheticTrace.Generate(new SyntheticSettings { Users = 20_000, Seed = 11 });
        int quietest = Stretches(probeTrace, stretchSeconds, stepCount).Min(w => w.Length);
        int users = (int)Math.Min(2_000_000, Math.Ceiling(20_000 * settings.MaxRate * settings.StepSeconds / Math.Max(1, quietest) * 1.2));
        var trace = SyntheticTrace.Generate(new SyntheticSettings { Users = users, Seed = 11 });
        var windows = Stretches(trace, stretchSeconds, stepCount);
        stdout.WriteLine(Inv($"Capacity search: {users:N0} synthetic users, {windows[0].Length:N0} requests in the first {stretchSeconds / 60:F0} min of trace time from hour 3 (up to {stepCount} such stretches, one per step), each step {settings.StepSeconds} s ({settings.Compression}x faster, the TTLs with it); towers spend {settings.TowerCpuMicroseconds} us of CPU per user; SLA p99 {settings.SlaMs} ms, fallbacks at most {settings.MaxFallback:P1}."));

        var configurations = new (string Name, bool Cache)[] { ("cache on", true), ("cache off", false) };
        var ramps = configurations.Select(_ => new List<IReadOnlyList<CapacityStep>>()).ToArray();
        for (int round = 0; round < settings.Rounds; round++)
        {
            for (int k = 0; k < configurations.Length; k++)
            {
                int i = (k + round) % configurations.Length; // the order alternates, so neither always runs first
                var ramp = await RampAsync(configurations[i].Cache, windows, settings);
                ramps[i].Add(ramp);
                stdout.WriteLine(Inv($"round {round + 1}, {configurations[i].Name}: ") + string.Join(", ", ramp.Select(s => Inv($"{s.Rate:F0}/s p99 {s.P99:F1} ms cached {s.CachedShare:P0} fallback {s.FallbackShare:P1} towers {s.TowerCpuPerSecond:F2} CPU-s/s{(s.Sustained ? "" : " (not sustained)")}"))));
            }
        }

        double[] Sustained(int i) => [.. ramps[i].Select(r => r.LastOrDefault(s => s.Sustained)?.Rate ?? 0)];
        var on = Sustained(0);
        var off = Sustained(1);
        double[] ratios = [.. on.Zip(off, (a, b) => b > 0 ? a / b : double.PositiveInfinity)];
        stdout.WriteLine();
        stdout.WriteLine(Inv($"{settings.Rounds} round(s), cache on and off alternating; each cell is the range over rounds."));
        stdout.WriteLine();
        stdout.WriteLine("| | cache on | cache off | on / off |");
        stdout.WriteLine("|---|---:|---:|---:|");
        stdout.WriteLine($"| largest rate sustained (p99 <= {Inv($"{settings.SlaMs}")} ms, fallbacks <= {Inv($"{settings.MaxFallback:P1}")}) | {RangeText.Of(on, "N0", "/s")} | {RangeText.Of(off, "N0", "/s")} | {RangeText.Of(ratios, "F2", "x")} |");
        double[] P99At(int i) => [.. ramps[i].Select(r => r.LastOrDefault(s => s.Sustained)?.P99 ?? double.NaN).Where(double.IsFinite)];
        stdout.WriteLine($"| p99 at that rate | {RangeText.Of(P99At(0), "F1", " ms")} | {RangeText.Of(P99At(1), "F1", " ms")} | |");
        double[] CachedAt(int i) => [.. ramps[i].Select(r => r.LastOrDefault(s => s.Sustained)?.CachedShare ?? double.NaN).Where(double.IsFinite)];
        stdout.WriteLine($"| embeddings served without inference at that rate | {RangeText.Of(CachedAt(0), "P0", "")} | {RangeText.Of(CachedAt(1), "P0", "")} | |");

        if (settings.ChartPath is not null)
        {
            var series = configurations.Select((c, i) => new Series(c.Name, MedianP99ByRate(ramps[i]))).ToList();
            series.Add(new Series(Inv($"SLA ({settings.SlaMs} ms)"), [.. series.SelectMany(s => s.Points).Select(p => p.X).Distinct().Order().Select(x => (x, settings.SlaMs))]));
            File.WriteAllText(settings.ChartPath, SweepChart.RenderSvg(
                Inv($"Ranking-service sample: p99 latency by request rate ({settings.TowerCpuMicroseconds} us of tower CPU per user, median of {settings.Rounds} rounds)"),
                "requests per second (log scale)", "p99 latency (ms)", null, series, logX: true, x => Inv($"{x:N0}")));
            stdout.WriteLine();
            stdout.WriteLine($"Chart written to {settings.ChartPath}.");
        }

        return 0;
    }

    /// <summary>One service, its rate raised step by step until a step is not sustained (or the highest rate).</summary>
    private static async Task<IReadOnlyList<CapacityStep>> RampAsync(bool cache, TraceRequest[][] windows, CapacitySettings settings)
    {
        var overrides = LoadRun.Overrides(settings.Compression, cache, failover: cache, failureRate: 0);
        overrides["Urls"] = "http://127.0.0.1:0";
        overrides["RankingService:TowerCpuMicrosecondsPerUser"] = Inv($"{settings.TowerCpuMicroseconds}");
        await using var app = RankingServiceApp.Create([], overrides, contentRoot: AppContext.BaseDirectory);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = LoadRun.MaxInFlight }) { BaseAddress = new Uri(address) };
        for (int i = 0; i < 200; i++)
        {
            using var warm = await client.PostAsJsonAsync("/rank", LoadRun.Body(-1 - i, i, settings.Items)); // users outside the trace
        }

        async Task<CapacityStep> MeasureAsync(double rate, TraceRequest[] window)
        {
            var requests = UsersFor(window, rate * settings.StepSeconds);
            var load = new LoadSettings(requests.Length, rate, 0, settings.StepSeconds * 3, 0, settings.Items, 1, 1, "redis", 0);
            var before = await client.GetFromJsonAsync<StatsResponse>("/stats");
            var (sent, errors, latencies, elapsed) = await LoadRun.SendAsync([client], requests, load);
            var after = await client.GetFromJsonAsync<StatsResponse>("/stats");
            long Delta(string source) => LoadRun.Requests(after!, source) - LoadRun.Requests(before!, source);
            long embeddings = Sources.Sum(Delta);
            double fallback = embeddings == 0 ? 0 : (double)Delta("fallback") / embeddings;
            double cached = embeddings == 0 ? 0 : (double)(Delta("direct") + Delta("regional") + Delta("failover")) / embeddings;
            double achieved = sent / elapsed.TotalSeconds;
            double p99 = LoadRun.Percentile(latencies, 0.99);
            double towerCpu = (after!.Towers.Values.Sum(t => t.ComputeMs) - before!.Towers.Values.Sum(t => t.ComputeMs)) / 1000 / elapsed.TotalSeconds;
            bool sustained = sent == requests.Length && achieved >= 0.95 * rate && errors == 0 && p99 <= settings.SlaMs && fallback <= settings.MaxFallback;
            return new CapacityStep(rate, achieved, p99, fallback, cached, errors, towerCpu, sustained);
        }

        var steps = new List<CapacityStep>();
        int next = 0; // the next stretch of trace time
        int coarse = StepCount(settings);
        for (double rate = settings.StartRate; next < coarse; rate *= settings.RateStep)
        {
            var step = await MeasureAsync(rate, windows[next++]);
            steps.Add(step);
            if (!step.Sustained)
            {
                break;
            }
        }

        // Between the last sustained rate and the one that failed, finer steps: the limit is then known to RefineStep.
        // The overloaded step's backlog drains first (a pause of 2 s, two trace minutes).
        if (steps is [.., { Sustained: true } last, { Sustained: false } failed] && settings.RefineStep > 1)
        {
            await Task.Delay(TimeSpan.FromSeconds(2));
            for (double rate = last.Rate * settings.RefineStep; rate < failed.Rate * 0.999 && next < windows.Length; rate *= settings.RefineStep)
            {
                var step = await MeasureAsync(rate, windows[next++]);
                steps.Add(step);
                if (!step.Sustained)
                {
                    break;
                }
            }
        }

        await app.StopAsync();
        return steps;
    }

    /// <summary>The requests of <paramref name="count"/> consecutive stretches of <paramref name="seconds"/> of trace time
    /// from hour 3, in trace order, cut in one pass over the trace.</summary>
    private static TraceRequest[][] Stretches(Trace trace, double seconds, int count)
    {
        var stretches = Enumerable.Range(0, count).Select(_ => new List<TraceRequest>()).ToArray();
        double from = TraceStart.TotalMilliseconds, length = seconds * 1000;
        foreach (var request in trace.Requests)
        {
            double offset = request.TimestampMs - from;
            if (offset >= 0 && offset / length < count)
            {
                stretches[(int)(offset / length)].Add(request);
            }
        }

        return [.. stretches.Select(s => s.ToArray())];
    }

    /// <summary>How many finer steps fit between two of <c>RateStep</c> apart.</summary>
    private static int RefineCount(CapacitySettings settings) =>
        settings.RefineStep > 1 ? (int)Math.Ceiling(Math.Log(settings.RateStep) / Math.Log(settings.RefineStep)) : 0;

    /// <summary>How many steps a ramp from <c>StartRate</c> to <c>MaxRate</c> has at most.</summary>
    private static int StepCount(CapacitySettings settings)
    {
        int count = 0;
        for (double rate = settings.StartRate; rate <= settings.MaxRate * 1.0001; rate *= settings.RateStep)
        {
            count++;
        }

        return count;
    }

    /// <summary>The requests of the share of users (chosen by a hash of the id) that makes about <paramref name="count"/> requests.</summary>
    private static TraceRequest[] UsersFor(TraceRequest[] window, double count)
    {
        double share = Math.Min(1, count / window.Length);
        return [.. window.Where(r => ((ulong)r.User * 0x9E3779B97F4A7C15UL >> 11) * (1.0 / (1UL << 53)) < share)];
    }

    private static List<(double X, double Y)> MedianP99ByRate(List<IReadOnlyList<CapacityStep>> ramps) =>
        [.. ramps.SelectMany(r => r).GroupBy(s => Math.Round(s.Rate, 3)).OrderBy(g => g.Key)
            .Select(g => (g.Key, g.Select(s => s.P99).Order().ElementAt(g.Count() / 2)))];

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
