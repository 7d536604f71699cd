using System.Diagnostics;

namespace ERCache.Samples.RankingService;

/// <summary>
/// Computes a few embeddings with every tower before the service takes traffic, so the first requests do not pay
/// for the JIT compiling the towers (a cold tower can miss the model's inference deadline). It calls the towers
/// directly: nothing reaches the cache, its metrics or the towers' own counters.
/// </summary>
/// <remarks>Hosted services start before Kestrel begins listening, so no request arrives during the warm-up.</remarks>
public sealed partial class TowerWarmup(TowerRegistry towers, IConfiguration configuration, ILogger<TowerWarmup> logger) : IHostedService
{
    /// <summary>Users computed per tower when <c>RankingService:WarmupUsers</c> is not set.</summary>
    public const int DefaultUsers = 200;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        int users = (configuration.GetSection("RankingService").Get<RankingServiceOptions>() ?? new RankingServiceOptions()).WarmupUsers;
        if (users < 0)
        {
            throw new InvalidOperationException($"RankingService:WarmupUsers must be at least 0 (got {users}).");
        }

        var clock = Stopwatch.StartNew();
        foreach (string model in towers.Models)
        {
            var tower = towers.Tower(model);
            var embedding = new float[tower.Dimensions];
            for (int u = 1; u <= users; u++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (tower.Onnx is { } onnx)
                {
                    onnx.Run([-u], embedding, cancellationToken); // the ONNX session's first runs are the slow ones
                }
                else
                {
                    tower.Compute(-u, embedding); // negative ids: never a real user's features
                }
            }

            towers.RecordWarmup(users);
        }

        LogWarmedUp(users, clock.Elapsed.TotalMilliseconds);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "User towers warmed up: {Users} users each in {Milliseconds:F0} ms.")]
    private partial void LogWarmedUp(int users, double milliseconds);
}
