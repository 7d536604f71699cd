namespace ERCache.Samples.RankingService;

/// <summary>A ranking request: the user and the candidate items to rank; <see cref="K"/> items come back.</summary>
public sealed record RankRequest(long UserId, long[]? Items, int K = 10);

/// <summary>One ranked item.</summary>
public sealed record RankedItem(long ItemId, float Score);

/// <summary>Where one model's user embedding came from.</summary>
public sealed record ModelEmbedding(EmbeddingSource Source, double AgeMs, InferenceFailureCause FailureCause, string Version);

/// <summary>The top items, best first, and per model the embedding's source and age.</summary>
public sealed record RankResponse(long UserId, IReadOnlyList<RankedItem> Items, IReadOnlyDictionary<string, ModelEmbedding> Models);

/// <summary>The service's counters: ERCache's (by instrument and tags) and the user towers' compute.</summary>
public sealed record StatsResponse(IReadOnlyDictionary<string, long> Counters, IReadOnlyDictionary<string, TowerStats> Towers);

/// <summary>What one user tower computed: users and CPU time.</summary>
public sealed record TowerStats(long Users, double ComputeMs);
