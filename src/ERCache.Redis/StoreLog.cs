using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace ERCache.Redis;

/// <summary>The regional store's log messages and their event ids.</summary>
internal static partial class StoreLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Warning, Message = "The regional store at {Endpoint} is unreachable ({FailureType}): {Error}. The cache serves from its local tiers and retries the connection.")]
    public static partial void Unreachable(ILogger logger, System.Net.EndPoint? endpoint, ConnectionFailureType failureType, string? error, Exception? exception);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "The regional store at {Endpoint} is reachable again.")]
    public static partial void Restored(ILogger logger, System.Net.EndPoint? endpoint);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "The regional store refused to {Operation} key {Key} ({Error}); only that user is affected (a miss, or values not written), the rest of the round trip went through. {Count} such keys since the last line.")]
    public static partial void KeyRefused(ILogger logger, string operation, string key, string error, long count);
}
