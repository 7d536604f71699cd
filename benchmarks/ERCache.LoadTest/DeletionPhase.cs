using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization;
using ERCache;
using ERCache.Replay.Traces;
using ERCache.Samples.RankingService;

/// <summary>What the deletion phase measured over all its removals.</summary>
/// <param name="Removals">Removals made (each on one service, round-robin).</param>
/// <param name="NotApplied">Removals some other service had not applied within 5 s.</param>
/// <param name="LagsMs">Per removal, ms from <c>DELETE</c> returning on its service to the last other service applying
/// it (0 when all had applied it before it returned), sorted.</param>
/// <param name="Checked">Embeddings asked for after application (every service, every model, every removal).</param>
/// <param name="Wrong">Of those, answers from a vector written before the removal began.</param>
internal sealed record DeletionResult(int Removals, int NotApplied, double[] LagsMs, int Checked, int Wrong)
{
    public double Lag(double quantile) => LoadRun.Percentile(LagsMs, quantile);
}

/// <summary>
/// The multi-process run's deletion phase: while the trace is sent again in the background, users are removed one at a
/// time, each on the next service in turn. Before its removal a user is requested from every service (so each holds it
/// in its local tiers); the removal is a <c>DELETE /users/{id}</c>, which returns once the store holds nothing for the
/// user and the message is published. The phase then waits until every other service has applied it (their
/// <c>/stats</c> report when they last applied one, as a <see cref="Stopwatch"/> timestamp: the monotonic clock the
/// processes on one Linux machine share), and asks every service for the user again: an embedding older than the time
/// since the removal began is a wrong answer (a fresh inference afterwards, shared through the store, is not).
/// </summary>
internal static class DeletionPhase
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Converters = { new JsonStringEnumConverter() } };
    private static readonly TimeSpan ApplyBound = TimeSpan.FromSeconds(5);

    public static async Task<DeletionResult> RunAsync(HttpClient[] services, TraceRequest[] requests, int removals, int items)
    {
        var users = requests.Select(r => r.User).Distinct().Take(removals).ToArray();
        var lags = new List<double>(users.Length);
        int notApplied = 0, wrong = 0, checkedAnswers = 0;
        for (int i = 0; i < users.Length; i++)
        {
            long user = users[i];
            foreach (var service in services)
            {
                await RankAsync(service, user, i, items); // every service holds the user now
            }

            var remover = services[i % services.Length];
            var others = services.Where(s => s != remover).ToArray();
            long[] appliedBefore = [.. (await MultiProcessRun.SnapshotAsync(others)).Select(AppliedCount)];
            long began = Stopwatch.GetTimestamp();
            using (var deleted = await remover.DeleteAsync(new Uri($"/users/{user}", UriKind.Relative)))
            {
                deleted.EnsureSuccessStatusCode();
                var removal = (await deleted.Content.ReadFromJsonAsync<RemovalResponse>(Json))!;
                var appliedAt = await WhenAppliedAsync(others, appliedBefore);
                if (appliedAt is null)
                {
                    notApplied++;
                    continue;
                }

                lags.Add(Math.Max(0, Stopwatch.GetElapsedTime(removal.Returned, appliedAt.Value).TotalMilliseconds));
            }

            foreach (var service in services)
            {
                var answer = await RankAsync(service, user, i, items);
                double sinceRemovalBegan = Stopwatch.GetElapsedTime(began).TotalMilliseconds;
                foreach (var model in answer.Models.Values)
                {
                    checkedAnswers++;
                    // Stamps are whole milliseconds: 1 ms of slack.
                    if (model.Source is EmbeddingSource.Direct or EmbeddingSource.Regional or EmbeddingSource.Failover && model.AgeMs > sinceRemovalBegan + 1)
                    {
                        wrong++;
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"removal {i} of user {user}: a {model.Source} answer {model.AgeMs:F1} ms old, {sinceRemovalBegan:F1} ms after the removal began"));
                    }
                }
            }
        }

        lags.Sort();
        return new DeletionResult(users.Length, notApplied, [.. lags], checkedAnswers, wrong);
    }

    /// <summary>The latest time the other services applied a message once each has applied one more than before; null
    /// when one has not within <see cref="ApplyBound"/>.</summary>
    private static async Task<long?> WhenAppliedAsync(HttpClient[] others, long[] appliedBefore)
    {
        var waiting = Stopwatch.StartNew();
        while (waiting.Elapsed < ApplyBound)
        {
            var stats = await MultiProcessRun.SnapshotAsync(others);
            if (stats.Select((s, k) => AppliedCount(s) > appliedBefore[k]).All(applied => applied))
            {
                return stats.Max(s => s.LastInvalidationApplied);
            }

            await Task.Delay(1);
        }

        return null;
    }

    private static long AppliedCount(StatsResponse stats) =>
        stats.Counters.GetValueOrDefault("ercache.invalidation.messages{direction=applied}");

    private static async Task<RankResponse> RankAsync(HttpClient service, long user, int index, int items)
    {
        using var response = await service.PostAsJsonAsync("/rank", LoadRun.Body(user, index, items));
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<RankResponse>(Json))!;
    }
}
