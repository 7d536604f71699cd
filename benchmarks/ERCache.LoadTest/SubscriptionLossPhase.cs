using ERCache.Replay.Traces;
using ERCache.Samples.RankingService;
using StackExchange.Redis;

/// <summary>Embeddings served in a set of passes of the subscription-loss phase, summed over services and passes.</summary>
internal sealed record PassTotals(int Passes, long Direct, long Regional, long Fresh, long Failover, long Fallback, long Inferred)
{
    public long Embeddings => Direct + Regional + Fresh + Failover + Fallback;

    public double Share(long part) => Embeddings == 0 ? 0 : (double)part / Embeddings;
}

/// <summary>What the subscription-loss phase measured: passes that began with every service's subscription cut, and
/// the passes without a cut between them.</summary>
internal sealed record LossResult(PassTotals AfterCut, PassTotals Undisturbed);

/// <summary>
/// The multi-process run's subscription-loss phase, on services whose local tiers are full (the trace sent once
/// before): the trace is sent again, in rounds of two passes, one undisturbed and one that begins with every pub/sub
/// connection to the store cut (<c>CLIENT KILL TYPE pubsub</c>). Each service's client reconnects and subscribes again
/// at once, and the service then drops the local vectors it can no longer vouch for (it may have missed a removal).
/// The passes' embeddings by source, summed over services, compare the two: the difference is what one lost
/// subscription costs over one pass of the trace.
/// </summary>
internal static class SubscriptionLossPhase
{
    public static async Task<LossResult> RunAsync(HttpClient[] services, TraceRequest[] requests, LoadSettings settings, string storeEndpoint, int rounds)
    {
        await using var admin = await ConnectionMultiplexer.ConnectAsync($"{storeEndpoint},allowAdmin=true");
        var server = admin.GetServer(admin.GetEndPoints()[0]);
        var cut = new List<(StatsResponse[] Before, StatsResponse[] After)>();
        var undisturbed = new List<(StatsResponse[] Before, StatsResponse[] After)>();
        for (int round = 0; round < rounds; round++)
        {
            foreach (bool cutting in new[] { false, true })
            {
                var before = await MultiProcessRun.SnapshotAsync(services);
                if (cutting)
                {
                    await server.ExecuteAsync("CLIENT", "KILL", "TYPE", "pubsub");
                }

                await LoadRun.SendAsync(services, requests, settings);
                (cutting ? cut : undisturbed).Add((before, await MultiProcessRun.SnapshotAsync(services)));
            }
        }

        return new LossResult(Sum(cut), Sum(undisturbed));
    }

    private static PassTotals Sum(List<(StatsResponse[] Before, StatsResponse[] After)> passes)
    {
        long Delta(Func<StatsResponse, long> read) => passes.Sum(p => p.After.Sum(read) - p.Before.Sum(read));
        return new PassTotals(
            passes.Count,
            Delta(s => LoadRun.Requests(s, "direct")),
            Delta(s => LoadRun.Requests(s, "regional")),
            Delta(s => LoadRun.Requests(s, "fresh")),
            Delta(s => LoadRun.Requests(s, "failover")),
            Delta(s => LoadRun.Requests(s, "fallback")),
            Delta(s => s.Towers.Values.Sum(t => t.Users)));
    }
}
